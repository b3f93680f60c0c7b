"""`fs serve`: search and browse a store from a web page (clip-retrieval's back end and front page).

- :mod:`featurestore.server.searcher`: the splits, FAISS indexes and encoder, loaded once;
- :mod:`featurestore.server.thumbnails`: small JPEGs of the images the store recorded;
- :mod:`featurestore.server.app`: the FastAPI application and its error answers;
- :mod:`featurestore.server.listener`: binding (localhost by default) and running uvicorn;
- ``static/``: the page (HTML, script, style), no build step.

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart).
"""
