protobuffers = ["./proto/*.proto"]
include      = ["flow.hcl"]

http {
  address = "127.0.0.1:8080"
}

services {
  select "profiles.*" {
    host = "http://127.0.0.1:9093"
  }
}
