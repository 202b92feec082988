//! HTTP/1.1 WebSocket upgrade handling, sans-io.
