//! The TCP listeners of the app and of the embedded S3 endpoint.

use axum::serve::{ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream};

/// `listener` with TCP_NODELAY on every connection it accepts (for `what`, in the warning if
/// that fails): without it, a response's last small write waits for the client's delayed
/// acknowledgement, about 40 ms per request whatever the response's size.
pub(crate) fn without_delay(
    listener: TcpListener,
    what: &'static str,
) -> TapIo<TcpListener, impl FnMut(&mut TcpStream) + Send + 'static> {
    listener.tap_io(move |tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(%err, "cannot set TCP_NODELAY on {what} connection");
        }
    })
}
