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
