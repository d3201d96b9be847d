"""Users web UI: lists the users the backend knows and adds new ones."""
import os

import requests
from flask import Flask, redirect, render_template, request, url_for

app = Flask(__name__)

BACKEND_URL = os.environ.get("BACKEND_URL", "http://backend:5001")


@app.route("/")
def index():
    error = None
    users = []
    try:
        response = requests.get(f"{BACKEND_URL}/api/users", timeout=5)
        response.raise_for_status()
        users = response.json()
    except requests.RequestException as exc:
        error = f"Could not load users: {exc}"
    return render_template("index.html", users=users, error=error)


@app.route("/add", methods=["POST"])
def add():
    payload = {"name": request.form.get("name", ""), "email": request.form.get("email", "")}
    try:
        response = requests.post(f"{BACKEND_URL}/api/users", json=payload, timeout=5)
        response.raise_for_status()
    except requests.RequestException as exc:
        return render_template("index.html", users=[], error=f"Could not add user: {exc}"), 502
    return redirect(url_for("index"))


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=5000)
