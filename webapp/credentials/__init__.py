"""Credentials in the web app: the pages (controllers.py, services.py), references in exported and
imported workflows (references.py), and the OAuth connect / callback routes (oauth.py)."""
