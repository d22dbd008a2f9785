"""Repository indexing and code search.

    walk.py      which files of a repository are indexed: ignore files, built-in rules, content checks
    languages.py file extension to language, and the syntax nodes that define symbols
    chunking.py  source text to chunks: syntax-aware for code, line windows for other text
    lexical.py   sparse BM25 vectors of code-aware tokens
    manifest.py  the SQLite manifest that makes runs incremental and resumable
    store.py     the vector store of one repository: Qdrant Edge or a Qdrant server collection
    layout.py    repository names and where each index lives in the data directory
    run.py       one indexing run: walk, chunk, embed in batches, store
    progress.py  the progress bar on a TTY and periodic log lines elsewhere
    readers.py   open stores kept between searches in the gateway, released to indexing runs
    search.py    dense, lexical and fused (RRF) search over one or all indexed repositories
    cli.py       the ``index`` and ``search`` subcommands
"""
