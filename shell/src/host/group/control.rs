//! The shell's end of a shared host's control socket (`SOCK_SEQPACKET`): one
//! `protocol::wire::GroupMsg` per record, an `Open` carrying the view's connection as
//! `SCM_RIGHTS`; the host's `GroupReply` records read on a thread of their own.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use protocol::wire::{GroupMsg, GroupReply, MAX_GROUP_RECORD};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvFlags, ReturnFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
    SocketFlags, SocketType,
};

/// A control socket pair: the shell's end and the host's (its standard input).
pub(crate) fn pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)?)
}

/// Sends one record, with `fd` if given. Never blocks: a host that does not read its control
/// socket (a full buffer) gets an error, as a dead one does.
pub(crate) fn send(control: &OwnedFd, msg: &GroupMsg, fd: Option<BorrowedFd<'_>>) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    protocol::wire::encode(msg, &mut bytes).map_err(std::io::Error::other)?;
    if bytes.len() > MAX_GROUP_RECORD {
        return Err(std::io::Error::other(format!("a control record of {} bytes", bytes.len())));
    }
    let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !ancillary.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other("no room for the view's connection in the record"));
    }
    let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
    let sent = rustix::net::sendmsg(control, &[IoSlice::new(&bytes)], &mut ancillary, flags)?;
    if sent != bytes.len() {
        return Err(std::io::Error::other("the control record went out short"));
    }
    Ok(())
}

/// Reads the host's records until the socket closes, giving each to `on_reply` (one that does
/// not decode is logged and skipped: the host is not trusted to speak well).
pub(crate) fn read_replies(control: &OwnedFd, group: &str, mut on_reply: impl FnMut(GroupReply)) {
    let mut buf = vec![0u8; 4096];
    loop {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut ancillary = RecvAncillaryBuffer::new(&mut space);
        let got = match rustix::net::recvmsg(
            control,
            &mut [IoSliceMut::new(&mut buf)],
            &mut ancillary,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(got) => got,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                tracing::debug!(group, "the group's control socket failed: {e}");
                return;
            }
        };
        // Whatever descriptors a host sends are closed unread.
        ancillary.drain().for_each(drop);
        if got.bytes == 0 {
            return;
        }
        if got.flags.intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC) {
            tracing::warn!(group, "the group's host sent an oversize control record; skipped");
            continue;
        }
        match protocol::wire::decode::<GroupReply>(buf.get(..got.bytes).unwrap_or_default()) {
            Ok(reply) => on_reply(reply),
            Err(e) => tracing::warn!(group, "the group's host sent a bad control record: {e}"),
        }
    }
}

/// Ends the socket both ways: the host reads the end of its control socket, and leaves.
pub(crate) fn close(control: &OwnedFd) {
    let _ = rustix::net::shutdown(control, rustix::net::Shutdown::Both);
}

#[cfg(test)]
mod tests;
