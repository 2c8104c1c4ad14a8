"""The router as an OpenAI-compatible HTTP proxy: discovery, engine scrapes, placement, passthrough.

``cli.router.build_proxy`` wires it and ``app.build_app`` serves it: a ``Fleet`` keeps the router's
endpoints in step with discovery, engine ``/metrics`` scrapes and KV events; the aiohttp app places each
request with the pure router (``autoscaler.routing``) and forwards it unchanged to the chosen engine.
"""
