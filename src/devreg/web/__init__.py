"""A deliberately small HTTP layer over raw ASGI: request, response, routing.

A framework would cost a third of the throughput (PRODUCT.md's table) for features we do
not use; this layer is what the two dialects need and nothing more.
"""
