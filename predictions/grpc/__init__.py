"""The Open Inference Protocol over gRPC (CONTRACT section 8): see server.py and service.py.

Importing this package creates no gRPC object; `server.build_server()` does, in the serving
process only.
"""
