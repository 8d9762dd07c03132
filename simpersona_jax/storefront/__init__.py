"""The local storefront: catalogs from canonical events, the ASGI app, its canonical event log."""
