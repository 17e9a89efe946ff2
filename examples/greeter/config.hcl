protobuffers = ["./proto/*.proto"]
include      = ["flow.hcl"]

http {
  address = "127.0.0.1:8080"
}

# A gRPC service: its Envoy cluster speaks HTTP/2 (without TLS for an http:// host).
services {
  select "helloworld.*" {
    host = "http://127.0.0.1:9092"
  }
}
