//! A loopback TCP proxy that limits how fast the server side's bytes reach the client: a
//! backup through it takes as long as the test needs, whatever the machine's speed. It can
//! also be pointed at another server, as a cluster's address moves to a promoted standby,
//! stall every connection (bytes held in both directions: a partition, or a stopped server)
//! and cut them (a reset).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Forwards `127.0.0.1:port()` to a target port. Bytes from the target to the client flow at
/// most at the current rate (bytes per second, per connection; 0 = unlimited); bytes from
/// the client flow freely. Dropping it closes every connection.
pub struct ThrottledProxy {
    addr: SocketAddr,
    target: Arc<AtomicU16>,
    rate: Arc<AtomicU64>,
    stalled: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl ThrottledProxy {
    pub fn start(target_port: u16, bytes_per_second: u64) -> ThrottledProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let target = Arc::new(AtomicU16::new(target_port));
        let rate = Arc::new(AtomicU64::new(bytes_per_second));
        let stalled = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (t, r, st, cs) = (target.clone(), rate.clone(), stop.clone(), conns.clone());
        let held = stalled.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", t.load(Ordering::SeqCst)))
                else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                {
                    let mut list = cs.lock().unwrap_or_else(|e| e.into_inner());
                    for s in [&client, &upstream] {
                        if let Ok(c) = s.try_clone() {
                            list.push(c);
                        }
                    }
                }
                let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
                    continue;
                };
                let h = held.clone();
                std::thread::spawn(move || pump(client, upstream, None, h));
                let (r, h) = (r.clone(), held.clone());
                std::thread::spawn(move || pump(u2, c2, Some(r), h));
            }
        });
        ThrottledProxy {
            addr,
            target,
            rate,
            stalled,
            stop,
            conns,
        }
    }

    /// Holds every byte in both directions from now on, connections staying open (`false`:
    /// lets them flow again): to the client the server looks stopped or partitioned.
    pub fn stall(&self, yes: bool) {
        self.stalled.store(yes, Ordering::SeqCst);
    }

    /// Closes every open connection at once, as a network reset would; new ones still work.
    pub fn cut(&self) {
        for c in self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Sends new connections to `port` from now on; open ones stay where they are.
    pub fn set_target(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
    }

    /// Changes the limit for every connection, at once (0 = unlimited).
    pub fn set_rate(&self, bytes_per_second: u64) {
        self.rate.store(bytes_per_second, Ordering::SeqCst);
    }
}

impl Drop for ThrottledProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.stall(false);
        self.cut();
        // Wakes the accept loop so it sees the stop flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies `from` to `to` until either side closes, pacing to `rate` when given, and holding
/// what it read while `stalled`.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    rate: Option<Arc<AtomicU64>>,
    stalled: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    // Pacing: the bytes sent since `since` may not run ahead of the rate.
    let mut since = Instant::now();
    let mut sent = 0u64;
    let mut last_rate = 0u64;
    loop {
        let limit = rate.as_ref().map_or(0, |r| r.load(Ordering::SeqCst));
        if limit != last_rate {
            (since, sent, last_rate) = (Instant::now(), 0, limit);
        }
        // Small reads when limited, so pacing is smooth (about 50 steps a second).
        let want = if limit == 0 {
            buf.len()
        } else {
            ((limit / 50) as usize).clamp(1024, buf.len())
        };
        let n = match from.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while stalled.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if limit > 0 {
            sent += n as u64;
            let due = Duration::from_secs_f64(sent as f64 / limit as f64);
            if let Some(ahead) = due.checked_sub(since.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_and_limits() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut hello = [0u8; 5];
            s.read_exact(&mut hello).unwrap();
            assert_eq!(&hello, b"hello");
            s.write_all(&vec![7u8; 200_000]).unwrap();
        });
        let proxy = ThrottledProxy::start(port, 1_000_000);
        let mut c = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        c.write_all(b"hello").unwrap();
        let started = Instant::now();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), 200_000);
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    #[test]
    fn stalls_and_cuts() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in server.incoming() {
                let mut s = s.unwrap();
                std::thread::spawn(move || {
                    let mut b = [0u8; 1];
                    while s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {}
                });
            }
        });
        let proxy = ThrottledProxy::start(port, 0);
        let mut c = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        let echo = |c: &mut TcpStream| -> std::io::Result<u8> {
            c.write_all(b"x")?;
            let mut b = [0u8; 1];
            c.read_exact(&mut b).map(|()| b[0])
        };
        assert_eq!(echo(&mut c).unwrap(), b'x');
        proxy.stall(true);
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(echo(&mut c).is_err(), "nothing comes back while stalled");
        proxy.stall(false);
        c.set_read_timeout(None).unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        assert_eq!(b[0], b'x', "the held byte arrives once resumed");
        proxy.cut();
        assert!(echo(&mut c).is_err(), "a cut connection is closed");
        let mut again = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        assert_eq!(echo(&mut again).unwrap(), b'x', "new connections work");
    }

    #[test]
    fn new_connections_follow_the_target() {
        let greeter = |word: &'static [u8]| {
            let server = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = server.local_addr().unwrap().port();
            std::thread::spawn(move || {
                for s in server.incoming() {
                    let _ = s.unwrap().write_all(word);
                }
            });
            port
        };
        let (one, two) = (greeter(b"one"), greeter(b"two"));
        let proxy = ThrottledProxy::start(one, 0);
        let hello = || {
            let mut c = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
            let mut got = [0u8; 3];
            c.read_exact(&mut got).unwrap();
            got
        };
        assert_eq!(&hello(), b"one");
        proxy.set_target(two);
        assert_eq!(&hello(), b"two");
    }
}
