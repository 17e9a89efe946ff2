//! The messages of `tests/fixtures/grpc`'s `users.v1` protos, as a gRPC client of its method
//! `users.v1.Directory/GetUser` has them.

#[derive(Clone, PartialEq, prost::Message)]
pub struct UserQuery {
    #[prost(string, tag = "1")]
    pub id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct User {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(int64, tag = "3")]
    pub visits: i64,
    #[prost(string, repeated, tag = "4")]
    pub roles: Vec<String>,
    #[prost(enumeration = "Role", tag = "5")]
    pub role: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum Role {
    Guest = 0,
    Member = 1,
    Admin = 2,
}
