endpoint "SayHello" "http" {
  endpoint = "/hello/:name"
  method   = "GET"
}

flow "SayHello" {
  input "helloworld.HelloRequest" {}

  resource "hello" {
    request "helloworld.Greeter" "SayHello" {
      name = "{{ input:name }}"
    }
  }

  output "helloworld.HelloReply" {
    message = "{{ hello:message }}"
  }
}

# The same flow as a gRPC method of its own, for gRPC, gRPC-Web and Connect clients.
endpoint "SayHello" "grpc" {
  package = "greeter"
  service = "Gateway"
  method  = "SayHello"
}
