"""The router as a Gateway API Inference Extension endpoint picker (Envoy ext_proc), beside the proxy.

The gateway carries the bytes; the picker only decides. ``server.EndpointPicker`` assembles it from the
proxy's parts (``Fleet``: discovery, engine scrapes and draining; ``RouterMetrics``; the OpenAI request
reader) around the same ``AffinityRouter``: ``picker`` places and releases, ``exchange`` follows one
ext_proc stream, ``messages`` reads and builds the protocol's messages (GIE proposal 004).
"""
