"""Accessories as data: their containers, backups, schema decisions."""
