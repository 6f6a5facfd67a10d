// netprobe::l7 - AMQP 0-9-1 (RabbitMQ) over captured syscall chunks.
//
// After the client's protocol header ("AMQP\0\0\x09\x01") both directions are frames:
// type (1 method, 2 content header, 3 content body, 8 heartbeat), channel, size, payload
// and the frame-end octet 0xCE. A method frame names its class and method; a
// synchronous method (queue.declare, basic.consume, channel.open, ...) is paired with its
// reply (-ok, basic.get-empty) on its channel for latency, and a channel.close or
// connection.close from the peer in its stead answers it with the close's reply code (an
// error). Asynchronous methods (basic.publish, basic.deliver, basic.ack, ...) are each a
// request of their own, without a response (duration 0); those that carry content
// (publish, deliver, return, get-ok) count their content header and body frames in their
// bytes. The parser of a connection end is makeAmqpParser; the tables are exposed for
// the stage, the tests and the fuzzer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include <netprobe/l7/parser.hpp>

namespace netprobe::l7 {

// "queue.declare", "basic.publish", ...; nullptr for a (class, method) the specification
// (and RabbitMQ's extensions) does not define.
[[nodiscard]] const char* amqpMethodName(int class_id, int method_id);
// A reply code's name ("PRECONDITION_FAILED"); nullptr for one not defined. 200 is REPLY_SUCCESS.
[[nodiscard]] const char* amqpReplyName(int code);

// local_port/remote_port: which end is the client when the capture began after the
// protocol header and the first methods do not tell (the end on port 5672/5671 is the
// broker, else the end on an ephemeral port is the client). Pending requests need no
// bound of their own: one synchronous request per channel and sender, at most 2048
// channels.
[[nodiscard]] std::unique_ptr<MessageParser> makeAmqpParser(ExchangeSink& sink, std::uint16_t local_port,
                                                            std::uint16_t remote_port);

}  // namespace netprobe::l7
