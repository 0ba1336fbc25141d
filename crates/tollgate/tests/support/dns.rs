//! A real authoritative DNS server on loopback UDP whose answers a test
//! changes while the gateway runs: A records for the names it is given,
//! an empty answer for their other types, NXDOMAIN for every other name.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

type Zone = Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>;

/// The running server; stops when dropped.
pub struct DnsServer {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    zone: Zone,
    queries: Arc<Mutex<HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsServer {
    /// Starts a server whose records all have time-to-live `ttl` seconds.
    pub async fn start(ttl: u32) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let zone: Zone = Arc::default();
        let queries: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (z, q) = (zone.clone(), queries.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let Ok(request) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut reply =
                    Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
                reply.metadata.authoritative = true;
                reply.metadata.recursion_desired = request.metadata.recursion_desired;
                reply.metadata.recursion_available = true;
                for query in &request.queries {
                    let name = key(&query.name().to_string());
                    *q.lock().unwrap().entry(name.clone()).or_default() += 1;
                    match z.lock().unwrap().get(&name) {
                        None => reply.metadata.response_code = ResponseCode::NXDomain,
                        Some(ips) if query.query_type() == RecordType::A => {
                            for ip in ips {
                                reply.add_answer(Record::from_rdata(
                                    query.name().clone(),
                                    ttl,
                                    RData::A(A(*ip)),
                                ));
                            }
                        }
                        Some(_) => {}
                    }
                }
                reply.add_queries(request.queries.clone());
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        DnsServer {
            addr,
            zone,
            queries,
            task,
        }
    }

    /// Makes `name` answer `ips` from now on.
    pub fn set(&self, name: &str, ips: &[Ipv4Addr]) {
        self.zone.lock().unwrap().insert(key(name), ips.to_vec());
    }

    /// How many questions about `name` were asked so far.
    pub fn queries(&self, name: &str) -> usize {
        self.queries
            .lock()
            .unwrap()
            .get(&key(name))
            .copied()
            .unwrap_or(0)
    }
}
