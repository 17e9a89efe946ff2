protobuffers = ["./proto/*.proto"]
include      = ["flow.hcl"]

http {
  address = "127.0.0.1:8080"
}

# Carts, customers, shipping and discounts are four services with hosts of their own (see the
# proto); here one local upstream serves all of them.
services {
  select "checkout.*" {
    host = "http://127.0.0.1:9091"
  }
}
