//! A real S3 implementation on loopback for the tests: moto's server mode
//! (`moto_server`, installed by `.ci/run`), and a proxy in front of it that
//! a test can cut to play a network fault while moto keeps its objects.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `moto_server` process for the duration of a test.
pub struct S3Server {
    child: Child,
    pub port: u16,
}

/// The credentials the tests give moto (it accepts any).
pub const ACCESS_KEY: &str = "test-access-key";
pub const SECRET_KEY: &str = "test-secret-key-never-shown";

impl S3Server {
    /// Starts moto on a free loopback port. Without `moto_server` on the
    /// PATH: `None` and a loud message, or a failure when `CI` is set
    /// (`.ci/run` installs it, so there its absence is a broken CI).
    pub fn start() -> Option<S3Server> {
        S3Server::start_with(&[])
    }

    /// [`S3Server::start`] with `vars` in moto's environment (e.g.
    /// `S3_UPLOAD_PART_MIN_SIZE`, to allow multipart parts smaller than
    /// S3's 5 MiB).
    pub fn start_with(vars: &[(&str, &str)]) -> Option<S3Server> {
        let program = std::env::var("SONICFLOW_MOTO").unwrap_or_else(|_| "moto_server".to_owned());
        let port = free_port();
        let spawned = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI is set but `{program}` cannot start ({e}): install it with `pip install 'moto[server]'`"
                );
                eprintln!(
                    "\n!!!!!!!!\n!!! SKIPPED: `{program}` cannot start ({e}).\n!!! The object-storage tests need moto's S3 server: pip install 'moto[server]'\n!!!!!!!!\n"
                );
                return None;
            }
        };
        let server = S3Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates bucket `name` and returns `s3://name`.
    pub fn bucket(&self, name: &str) -> String {
        create_bucket(self.port, name);
        format!("s3://{name}")
    }

    /// The environment [`S3Server::env`] gives a child, as name–value pairs.
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut cmd = Command::new("true");
        self.env(&mut cmd);
        cmd.get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
            .collect()
    }

    /// A client of `url` on this server in the test's own process,
    /// configured as the binary is from its environment.
    pub fn open(&self, url: &str) -> sonicflow::store::Bucket {
        sonicflow::store::Bucket::open_with(url, &self.vars()).expect("the bucket opens")
    }

    /// Sets the standard AWS environment on `cmd` to reach this server
    /// (or `endpoint`, a proxy in front of it).
    pub fn env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        aws_env(cmd, &self.endpoint())
    }
}

/// The standard AWS environment for an S3-compatible server at `endpoint`.
pub fn aws_env<'c>(cmd: &'c mut Command, endpoint: &str) -> &'c mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `PUT /name` (moto does not check signatures on bucket creation).
fn create_bucket(port: u16, name: &str) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("moto answers");
    write!(
        stream,
        "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("the request is sent");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "moto refused to create bucket {name}: {answer}"
    );
}

/// A TCP proxy on loopback in front of `upstream`, that a test can take
/// down (every open connection is cut and new ones are refused) and bring
/// back, while the server behind it keeps its state.
pub struct FaultProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    trip: Arc<Mutex<Option<Trip>>>,
    requests: Arc<AtomicUsize>,
}

/// A cut armed by [`FaultProxy::cut_on`]: the bytes to watch for in what
/// clients send, and how many more sightings until the cut.
struct Trip {
    needle: Vec<u8>,
    left: usize,
}

impl FaultProxy {
    pub fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let trip: Arc<Mutex<Option<Trip>>> = Arc::new(Mutex::new(None));
        let requests = Arc::new(AtomicUsize::new(0));
        let (up2, open2, trip2, requests2) =
            (up.clone(), open.clone(), trip.clone(), requests.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                    let mut open = open2.lock().unwrap_or_else(|p| p.into_inner());
                    open.push(c);
                    open.push(s);
                }
                let watch = Watch {
                    up: up2.clone(),
                    open: open2.clone(),
                    trip: trip2.clone(),
                    requests: requests2.clone(),
                };
                pipe_watched(client.try_clone(), server.try_clone(), watch);
                pipe(server.try_clone(), client.try_clone());
            }
        });
        FaultProxy {
            port,
            up,
            open,
            trip,
            requests,
        }
    }

    /// How many HTTP requests clients sent through the proxy so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Cuts (as [`FaultProxy::cut`]) when a client sends `needle` for the
    /// `nth` time from now, before those bytes reach the server: a fault
    /// at an exact request, whatever the timing.
    pub fn cut_on(&self, needle: &str, nth: usize) {
        *self.trip.lock().unwrap_or_else(|p| p.into_inner()) = Some(Trip {
            needle: needle.as_bytes().to_vec(),
            left: nth,
        });
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cuts every connection and refuses new ones until [`FaultProxy::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        *self.trip.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.up.store(true, Ordering::SeqCst);
    }
}

/// What the client-to-server pipe needs to trip a cut.
struct Watch {
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    trip: Arc<Mutex<Option<Trip>>>,
    requests: Arc<AtomicUsize>,
}

impl Watch {
    /// Counts the requests that start in `chunk` (each has one `Host` header).
    fn count(&self, chunk: &[u8]) {
        let hosts = chunk
            .windows(7)
            .filter(|w| w.eq_ignore_ascii_case(b"\r\nhost:"))
            .count();
        self.requests.fetch_add(hosts, Ordering::SeqCst);
    }

    /// Whether `chunk` (after `tail`, the end of the last chunk, which is
    /// updated) trips the cut.
    fn trips(&self, tail: &mut Vec<u8>, chunk: &[u8]) -> bool {
        let mut trip = self.trip.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = trip.as_mut() else {
            return false;
        };
        let mut seen: Vec<u8> = std::mem::take(tail);
        seen.extend_from_slice(chunk);
        let width = t.needle.len().max(1);
        let hits = seen
            .windows(width)
            .filter(|w| *w == t.needle.as_slice())
            .count();
        // Too short to hold a whole needle, so none is counted twice.
        *tail = seen[seen.len().saturating_sub(width - 1)..].to_vec();
        t.left = t.left.saturating_sub(hits);
        if t.left > 0 {
            return false;
        }
        *trip = None;
        self.up.store(false, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        true
    }
}

/// [`pipe`], watching what passes for an armed cut.
fn pipe_watched(from: std::io::Result<TcpStream>, to: std::io::Result<TcpStream>, watch: Watch) {
    let (Ok(mut from), Ok(mut to)) = (from, to) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            watch.count(chunk);
            if watch.trips(&mut tail, chunk) {
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
            if to.write_all(chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

fn pipe(from: std::io::Result<TcpStream>, to: std::io::Result<TcpStream>) {
    let (Ok(mut from), Ok(mut to)) = (from, to) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}
