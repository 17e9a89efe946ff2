# The benchmark's flow: a checkout of three calls, `a` and `b` in parallel, `c` after `a`, JSON
# in and out of about 1 KB. `cargo xtask bench` points the hosts at its upstreams.
protobuffers = ["./proto/*.proto"]

services {
  select "bench.A" {
    host = "$BENCH_A_HOST"
  }

  select "bench.B" {
    host = "$BENCH_B_HOST"
  }

  select "bench.C" {
    host = "$BENCH_C_HOST"
  }
}

endpoint "checkout" "http" {
  endpoint = "/checkout"
  method   = "POST"
}

flow "checkout" {
  input "bench.Order" {}

  resource "a" {
    request "bench.A" "Get" {
      id = "{{ input:id }}"
    }
  }

  resource "b" {
    request "bench.B" "Get" {
      id = "{{ input:id }}"
    }
  }

  resource "c" {
    request "bench.C" "Price" {
      id    = "{{ a:id }}"
      name  = "{{ a:name }}"
      items = "{{ input:items }}"
    }
  }

  output "bench.Checkout" {
    id       = "{{ input:id }}"
    customer = "{{ b:name }}"
    status   = "{{ a:status }}"
    total    = "{{ c:total }}"
    items    = "{{ c:items }}"
  }
}
