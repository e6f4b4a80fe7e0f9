//! The event bus as both transports see it: the topology of DESIGN §3 by
//! name, and the message properties of DESIGN §2 in a transport-neutral form
//! (the in-memory broker and RabbitMQ share them, so they cannot drift).

pub mod message;
pub mod topology;
