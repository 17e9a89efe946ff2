endpoint "GetUser" "http" {
  endpoint = "/user/:id"
  method   = "GET"
}

flow "GetUser" {
  input "proto.Query" {}

  resource "user" {
    request "proto.Users" "Get" {
      id = "{{ input:id }}"
    }
  }

  output "proto.User" {
    name = "{{ user:name }}"
  }
}
