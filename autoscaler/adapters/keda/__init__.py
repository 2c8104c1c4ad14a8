"""KEDA external scaler over gRPC: ``scaler`` serves the board; ``externalscaler_pb2*`` are generated."""
