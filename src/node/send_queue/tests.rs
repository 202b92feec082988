use std::io::{self, IoSlice, Write};
use std::sync::Arc;

use super::{SendQueue, SLICES_PER_WRITE};
use crate::bus::Frame;
use crate::ws::{encode_frame, OpCode};

/// A socket whose kernel takes at most `room` bytes per write.
struct Socket {
    wire: Vec<u8>,
    room: usize,
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let before = self.wire.len();
        for slice in slices {
            let take = slice.len().min(self.room - (self.wire.len() - before));
            self.wire.extend_from_slice(&slice[..take]);
        }
        Ok(self.wire.len() - before)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn socket(room: usize) -> Socket {
    Socket {
        wire: Vec::new(),
        room,
    }
}

/// The lag as kept incrementally equals the lag counted afresh.
fn assert_lag_kept(queue: &SendQueue) {
    if let Some(backlog) = &queue.0 {
        let front = backlog.chunks.front().map_or(0, |chunk| chunk.len());
        let unsent: usize = backlog.chunks.iter().map(|chunk| chunk.len()).sum();
        assert_eq!(queue.lag(), unsent - front);
        assert_eq!(queue.len(), unsent - backlog.front_sent);
    }
}

fn drain(queue: &mut SendQueue, socket: &mut Socket) {
    while !queue.is_empty() {
        assert_lag_kept(queue);
        assert!(queue.write_to(socket).unwrap() > 0);
    }
}

fn frame(text: &str) -> Arc<Frame> {
    Arc::new(Frame::text(text))
}

fn control(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_frame(&mut bytes, opcode, payload);
    bytes
}

#[test]
fn a_shared_frame_is_referenced_not_copied() {
    let shared = frame("hello");
    let mut queues: Vec<SendQueue> = (0..3).map(|_| SendQueue::default()).collect();
    for queue in &mut queues {
        queue.push_frame(shared.clone(), false);
    }
    assert_eq!(Arc::strong_count(&shared), 4);
    for queue in &mut queues {
        let mut socket = socket(usize::MAX);
        drain(queue, &mut socket);
        assert_eq!(socket.wire, shared.bytes());
    }
    assert_eq!(Arc::strong_count(&shared), 1, "written frames are released");
}

#[test]
fn every_byte_goes_out_once_and_in_order_whatever_the_kernel_takes() {
    let frames: Vec<_> = (0..100).map(|i| frame(&"x".repeat(i * 7))).collect();
    for room in [1, 2, 3, 7, 64, 1000, usize::MAX] {
        let mut queue = SendQueue::default();
        let mut expected = Vec::new();
        queue.push_with(|out| out.extend_from_slice(b"HTTP/1.1 101\r\n\r\n"));
        expected.extend_from_slice(b"HTTP/1.1 101\r\n\r\n");
        for (i, frame) in frames.iter().enumerate() {
            queue.push_frame(frame.clone(), false);
            expected.extend_from_slice(frame.bytes());
            if i % 10 == 0 {
                let echo = format!("echo {i}");
                queue.push_with(|out| encode_frame(out, OpCode::Text, echo.as_bytes()));
                encode_frame(&mut expected, OpCode::Text, echo.as_bytes());
            }
        }
        assert_eq!(queue.len(), expected.len());
        let mut socket = socket(room);
        drain(&mut queue, &mut socket);
        assert_eq!(
            socket.wire, expected,
            "kernel taking {room} bytes per write"
        );
        assert_eq!(queue.len(), 0);
    }
}

#[test]
fn one_write_gathers_many_frames() {
    let mut queue = SendQueue::default();
    for _ in 0..SLICES_PER_WRITE * 2 {
        queue.push_frame(frame("m"), false);
    }
    let mut socket = socket(usize::MAX);
    let written = queue.write_to(&mut socket).unwrap();
    assert_eq!(written, SLICES_PER_WRITE * frame("m").bytes().len());
    drain(&mut queue, &mut socket);
    assert_eq!(socket.wire.len(), 2 * written);
}

#[test]
fn control_frames_go_out_at_the_next_frame_boundary_in_their_order() {
    let (big, next) = (frame(&"b".repeat(1000)), frame("next"));
    let mut queue = SendQueue::default();
    queue.push_frame(big.clone(), false);
    queue.push_frame(next.clone(), false);
    let mut socket = socket(100);
    queue.write_to(&mut socket).unwrap(); // `big` is in flight
    let (pong, ping) = (control(OpCode::Pong, b"p1"), control(OpCode::Ping, b""));
    queue.push_control(|out| out.extend_from_slice(&pong));
    queue.push_control(|out| out.extend_from_slice(&ping));
    socket.room = 7;
    drain(&mut queue, &mut socket);
    let expected = [big.bytes(), &pong, &ping, next.bytes()].concat();
    assert_eq!(socket.wire, expected);
}

#[test]
fn a_control_frame_goes_before_a_message_not_yet_started() {
    let message = frame("later");
    let mut queue = SendQueue::default();
    queue.push_frame(message.clone(), false);
    let ping = control(OpCode::Ping, b"");
    queue.push_control(|out| out.extend_from_slice(&ping));
    let mut socket = socket(usize::MAX);
    drain(&mut queue, &mut socket);
    assert_eq!(socket.wire, [&ping[..], message.bytes()].concat());
}

#[test]
fn lag_counts_what_waits_behind_the_message_in_flight() {
    let (big, small) = (frame(&"b".repeat(10_000)), frame("small"));
    let mut queue = SendQueue::default();
    assert_eq!(
        queue.lag_with(big.bytes().len()),
        0,
        "a first message is in flight at once"
    );
    queue.push_frame(big.clone(), false);
    assert_eq!(queue.lag(), 0);
    let mut socket = socket(4000);
    queue.write_to(&mut socket).unwrap();
    assert_eq!(queue.len(), big.bytes().len() - 4000);
    assert_eq!(
        queue.lag(),
        0,
        "a partly written message is still in flight"
    );
    queue.push_frame(small.clone(), false);
    assert_eq!(queue.lag(), small.bytes().len());
    assert_eq!(queue.lag_with(10), small.bytes().len() + 10);
}

#[test]
fn discarding_keeps_only_the_message_in_flight() {
    let (big, queued) = (frame(&"b".repeat(1000)), frame("queued"));
    let mut queue = SendQueue::default();
    queue.push_frame(big.clone(), false);
    queue.push_frame(queued.clone(), false);
    queue.push_control(|out| out.extend_from_slice(&control(OpCode::Ping, b"")));
    let mut socket = socket(0);
    assert!(queue.write_to(&mut socket).is_err());
    socket.room = 10; // the ping, then 8 bytes of `big`
    queue.write_to(&mut socket).unwrap();
    queue.discard_unstarted();
    assert_eq!(
        Arc::strong_count(&queued),
        1,
        "the queued frame is released"
    );
    queue.push_with(|out| out.extend_from_slice(b"CLOSE"));
    socket.room = usize::MAX;
    drain(&mut queue, &mut socket);
    let expected = [&control(OpCode::Ping, b"")[..], big.bytes(), b"CLOSE"].concat();
    assert_eq!(socket.wire, expected);

    let mut unstarted = SendQueue::default();
    unstarted.push_with(|out| out.extend_from_slice(b"owned"));
    unstarted.push_frame(queued.clone(), false);
    unstarted.discard_unstarted();
    assert!(unstarted.is_empty(), "nothing was in flight");
}

#[test]
fn an_owned_message_in_flight_survives_a_discard() {
    let mut queue = SendQueue::default();
    queue.push_with(|out| out.extend_from_slice(b"0123456789"));
    queue.push_frame(frame("dropped"), false);
    let mut socket = socket(4);
    queue.write_to(&mut socket).unwrap();
    queue.discard_unstarted();
    queue.push_with(|out| out.extend_from_slice(b"!"));
    socket.room = usize::MAX;
    drain(&mut queue, &mut socket);
    assert_eq!(socket.wire, b"0123456789!");
}

#[test]
fn an_empty_queue_owns_nothing() {
    let mut queue = SendQueue::default();
    queue.push_with(|_| {});
    assert!(queue.is_empty());
    queue.push_frame(frame("x"), false);
    drain(&mut queue, &mut socket(usize::MAX));
    assert!(queue.is_empty() && queue.0.is_none());
}

#[test]
fn control_frames_never_overtake_the_connections_own_bytes() {
    let mut queue = SendQueue::default();
    queue.push_with(|out| out.extend_from_slice(b"HTTP/1.1 101\r\n\r\n"));
    let pong = control(OpCode::Pong, b"early");
    queue.push_control(|out| out.extend_from_slice(&pong));
    let push = frame("push");
    queue.push_frame(push.clone(), false);
    let mut socket = socket(3);
    drain(&mut queue, &mut socket);
    let expected = [&b"HTTP/1.1 101\r\n\r\n"[..], &pong, push.bytes()].concat();
    assert_eq!(socket.wire, expected);
}

#[test]
fn owned_bytes_keep_their_order_with_control_frames() {
    // A pong for a ping that came mid-message, then the echo of that message.
    let mut queue = SendQueue::default();
    let pong = control(OpCode::Pong, b"ping payload");
    queue.push_control(|out| out.extend_from_slice(&pong));
    queue.push_with(|out| out.extend_from_slice(b"echo"));
    let mut socket = socket(usize::MAX);
    drain(&mut queue, &mut socket);
    assert_eq!(socket.wire, [&pong[..], b"echo"].concat());

    // A close frame waits behind queued pushes; nothing overtakes it.
    let (a, b) = (frame("a"), frame("b"));
    queue.push_frame(a.clone(), false);
    queue.push_frame(b.clone(), false);
    queue.push_with(|out| out.extend_from_slice(b"CLOSE"));
    queue.push_control(|out| out.extend_from_slice(&pong));
    drain(&mut queue, &mut socket);
    let expected = [&pong[..], b"echo", a.bytes(), b.bytes(), b"CLOSE", &pong].concat();
    assert_eq!(socket.wire, expected);
}

#[test]
fn a_deflated_chunk_sends_the_compressed_variant() {
    let text = "compress me ".repeat(40);
    let shared = frame(&text);
    let mut compressions = 0;
    let compressed = shared
        .deflated(0, || compressions += 1)
        .expect("repetitive text shrinks")
        .to_vec();
    let copy = Arc::new(Frame::clone(&shared));
    assert_eq!(
        copy.deflated(0, || compressions += 1),
        Some(&compressed[..])
    );
    assert_eq!(compressions, 1, "copies share the compressed variant");
    let mut queue = SendQueue::default();
    queue.push_frame(copy.clone(), true);
    queue.push_frame(copy.clone(), false);
    assert_eq!(queue.lag(), copy.bytes().len());
    let mut socket = socket(7);
    drain(&mut queue, &mut socket);
    assert_eq!(socket.wire, [&compressed[..], copy.bytes()].concat());
}
