from dataclasses import replace

from backend.app import create_app
from backend.migrate import Migration, load_migrations
from backend.settings import ReleaseInfo


def test_healthz_needs_no_database(clean_database, closed_port):
    app = create_app(database=replace(clean_database, port=closed_port))
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_when_migrated(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "schema_version": load_migrations()[-1].version}


def test_readyz_when_database_unreachable(clean_database, closed_port):
    app = create_app(database=replace(clean_database, port=closed_port))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not ready"
    assert body["error"].startswith("database unreachable: (2003)")


def test_readyz_with_wrong_credentials(clean_database):
    app = create_app(database=replace(clean_database, password="wrong"))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "(1045)" in response.get_json()["error"]


def test_readyz_when_schema_never_migrated(fresh_database):
    response = create_app(database=fresh_database).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"] == "schema not migrated: run python -m backend.migrate"


def test_readyz_when_a_migration_is_pending(clean_database):
    newer = load_migrations() + [Migration("9999", "add_nicknames", "SELECT 1;")]
    response = create_app(database=clean_database, migrations=newer).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"] == "schema out of date: pending migrations 9999_add_nicknames"


def test_readyz_after_rollback_to_code_that_knows_fewer_migrations(clean_database):
    # The database is ahead of this (older) code: still ready, by design.
    response = create_app(database=clean_database, migrations=[]).test_client().get("/readyz")
    assert response.status_code == 200


def test_readyz_when_the_query_fails(fresh_database):
    from backend import db

    conn = db.connect(fresh_database)
    with conn.cursor() as cursor:
        # A table of that name the query cannot read the expected columns from.
        cursor.execute("CREATE TABLE schema_migrations (id INT)")
    conn.close()
    response = create_app(database=fresh_database).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"].startswith("database query failed: (1054)")


def test_version_from_release_info(clean_database):
    release = ReleaseInfo("20261127-101500-abc1234", "abc1234def")
    response = create_app(database=clean_database, release=release).test_client().get("/version")
    assert response.get_json() == {"release": "20261127-101500-abc1234", "revision": "abc1234def"}


def test_version_defaults_to_unknown(clean_database, monkeypatch):
    monkeypatch.delenv("DEPLOYCTL_RELEASE", raising=False)
    monkeypatch.delenv("DEPLOYCTL_REVISION", raising=False)
    response = create_app(database=clean_database).test_client().get("/version")
    assert response.get_json() == {"release": "unknown", "revision": "unknown"}
