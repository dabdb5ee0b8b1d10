"""Load tests (Locust over gRPC and HTTP) and the serving benchmark."""
