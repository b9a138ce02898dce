"""Result types, the SQLite store and statistics derived on read."""
