"""Local cluster for kubehooks.backup: one real node plus kwok fake nodes, built and run by this package.

Run ``python3 -m localcluster --help`` from the repository root.
"""
