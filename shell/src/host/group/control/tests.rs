use std::io::{Read, Write};
use std::os::fd::AsFd;

use super::*;

/// One record as the host reads it: its bytes and the descriptors it carried.
fn receive(fd: &OwnedFd) -> (Vec<u8>, Vec<OwnedFd>) {
    let mut buf = vec![0u8; MAX_GROUP_RECORD];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let got =
        rustix::net::recvmsg(fd, &mut [IoSliceMut::new(&mut buf)], &mut ancillary, RecvFlags::CMSG_CLOEXEC).unwrap();
    let mut fds = Vec::new();
    for m in ancillary.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(r) = m {
            fds.extend(r);
        }
    }
    buf.truncate(got.bytes);
    (buf, fds)
}

#[test]
fn an_open_carries_the_views_connection_and_each_record_is_one_message() {
    let (shell, host) = pair().unwrap();
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let open = GroupMsg::Open { label: "prices #1".into(), args: vec!["webview".into(), "--url".into(), "x".into()] };
    send(&shell, &open, Some(theirs.as_fd())).unwrap();
    send(&shell, &GroupMsg::Ping { nonce: 7 }, None).unwrap();
    drop(theirs);

    let (bytes, fds) = receive(&host);
    assert_eq!(protocol::wire::decode::<GroupMsg>(&bytes).unwrap(), open);
    assert_eq!(fds.len(), 1);
    // The descriptor is the view's connection: what the host writes on it, the shell reads.
    let mut view = std::os::unix::net::UnixStream::from(fds.into_iter().next().unwrap());
    view.write_all(b"hello").unwrap();
    let mut got = [0u8; 5];
    (&ours).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello");

    let (bytes, fds) = receive(&host);
    assert_eq!(protocol::wire::decode::<GroupMsg>(&bytes).unwrap(), GroupMsg::Ping { nonce: 7 });
    assert!(fds.is_empty());
}

#[test]
fn a_hosts_bad_records_are_skipped_and_its_good_ones_read_until_it_closes() {
    let (shell, host) = pair().unwrap();
    let record = |bytes: &[u8]| {
        let mut none = SendAncillaryBuffer::new(&mut []);
        rustix::net::sendmsg(&host, &[IoSlice::new(bytes)], &mut none, SendFlags::NOSIGNAL).unwrap();
    };
    // Garbage, a message with bytes after it, an oversize record, and descriptors it should
    // not send: none of it reaches the shell, and nothing stops the reading.
    record(&[0xff, 0xff, 0xff]);
    let mut pong = Vec::new();
    protocol::wire::encode(&GroupReply::Pong { nonce: 3 }, &mut pong).unwrap();
    record(&[pong.as_slice(), &[0]].concat());
    record(&vec![0u8; 8192]);
    {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fds = [a.as_fd()];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut ancillary = SendAncillaryBuffer::new(&mut space);
        assert!(ancillary.push(SendAncillaryMessage::ScmRights(&fds)));
        rustix::net::sendmsg(&host, &[IoSlice::new(&pong)], &mut ancillary, SendFlags::NOSIGNAL).unwrap();
    }
    let refused = GroupReply::Refused { label: "a".into(), error: "no".into() };
    let mut bytes = Vec::new();
    protocol::wire::encode(&refused, &mut bytes).unwrap();
    record(&bytes);
    close(&host);
    drop(host);

    let mut got = Vec::new();
    read_replies(&shell, "test", |r| got.push(r));
    // The pong with a descriptor is taken (the descriptor closed), the rest skipped.
    assert_eq!(got, [GroupReply::Pong { nonce: 3 }, refused]);
}

#[test]
fn a_record_too_large_for_the_host_is_not_sent() {
    let (shell, _host) = pair().unwrap();
    let huge = GroupMsg::Open { label: "x".repeat(MAX_GROUP_RECORD), args: Vec::new() };
    assert!(send(&shell, &huge, None).is_err());
}
