# The benchmark's small flow: a profile of two calls, `user` and `account` in parallel, GET
# with small JSON answers, a dozen fields out. `cargo xtask bench` points the hosts at its
# upstreams.
protobuffers = ["./proto/*.proto"]

services {
  select "bench.Users" {
    host = "$BENCH_A_HOST"
  }

  select "bench.Accounts" {
    host = "$BENCH_B_HOST"
  }
}

endpoint "profile" "http" {
  endpoint = "/profile/:id"
  method   = "GET"
}

flow "profile" {
  input "bench.Query" {}

  resource "user" {
    request "bench.Users" "Get" {
      id = "{{ input:id }}"
    }
  }

  resource "account" {
    request "bench.Accounts" "Get" {
      id = "{{ input:id }}"
    }
  }

  output "bench.Profile" {
    id       = "{{ user:id }}"
    name     = "{{ user:name }}"
    email    = "{{ user:email }}"
    country  = "{{ user:country }}"
    age      = "{{ user:age }}"
    active   = "{{ user:active }}"
    plan     = "{{ account:plan }}"
    balance  = "{{ account:balance }}"
    currency = "{{ account:currency }}"
    since    = "{{ account:since }}"
    limit    = "{{ account:limit }}"
    account  = "{{ account:id }}"
  }
}
