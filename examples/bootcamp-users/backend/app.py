"""Users API: a small JSON API over MySQL.

GET  /api/users          -> list of users
POST /api/users          -> create a user from {"name": ..., "email": ...}
"""
import os
from urllib.parse import unquote, urlparse

import pymysql
from flask import Flask, jsonify, request

app = Flask(__name__)

DATABASE_URI = os.environ.get("DATABASE_URI", "mysql+pymysql://root:password@db:3306/users")


def get_connection():
    uri = urlparse(DATABASE_URI)
    return pymysql.connect(
        host=uri.hostname,
        port=uri.port or 3306,
        user=unquote(uri.username or "root"),
        password=unquote(uri.password or ""),
        database=uri.path.lstrip("/"),
        cursorclass=pymysql.cursors.DictCursor,
        connect_timeout=5,
    )


@app.route("/api/users", methods=["GET"])
def list_users():
    conn = get_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, name, email FROM users ORDER BY id")
            return jsonify(cur.fetchall())
    finally:
        conn.close()


@app.route("/api/users", methods=["POST"])
def add_user():
    data = request.get_json(silent=True) or {}
    name = (data.get("name") or "").strip()
    email = (data.get("email") or "").strip()
    if not name or not email:
        return jsonify({"error": "name and email are required"}), 400
    conn = get_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO users (name, email) VALUES (%s, %s)", (name, email))
            user_id = cur.lastrowid
        conn.commit()
    finally:
        conn.close()
    return jsonify({"id": user_id, "name": name, "email": email}), 201


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=5001)
