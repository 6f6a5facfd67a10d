// Apache Kafka over captured syscall chunks (see kafka.hpp).
//
// Each direction is framed by the messages' 4-byte sizes (l7::Framer): a request is kept
// with its api key, version, correlation id and (Produce, Fetch) first topic until the
// response with its correlation id arrives; the broker answers in order, so requests
// older than an answered one were answered in bytes that were not captured (they are
// counted unanswered). Of a response the parser reads, per API and version, the error
// codes: ApiVersions, Metadata, Produce, Fetch, ListOffsets, OffsetCommit and
// FindCoordinator in full (top-level, per topic and per partition codes), the group,
// SASL and transaction APIs whose response starts with its error code by that code;
// other APIs' outcome is unknown. A response cut by the capture before its codes were
// all seen, with none non-zero, is unknown too.
#include <netprobe/l7/kafka.hpp>

#include <algorithm>
#include <array>
#include <deque>
#include <iterator>
#include <string>

namespace netprobe::l7 {
namespace {

constexpr std::uint64_t kMaxSize = 100u << 20;  // NP_L7_KAFKA_MAX_SIZE: the broker's default socket.request.max.bytes
constexpr int kMaxApiKey = 75;                  // NP_L7_KAFKA_MAX_API_KEY
constexpr int kMaxApiVersion = 20;              // NP_L7_KAFKA_MAX_API_VERSION

constexpr const char* kApis[] = {
    "Produce", "Fetch", "ListOffsets", "Metadata", "LeaderAndIsr", "StopReplica", "UpdateMetadata",
    "ControlledShutdown", "OffsetCommit", "OffsetFetch", "FindCoordinator", "JoinGroup", "Heartbeat", "LeaveGroup",
    "SyncGroup", "DescribeGroups", "ListGroups", "SaslHandshake", "ApiVersions", "CreateTopics", "DeleteTopics",
    "DeleteRecords", "InitProducerId", "OffsetForLeaderEpoch", "AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn",
    "WriteTxnMarkers", "TxnOffsetCommit", "DescribeAcls", "CreateAcls", "DeleteAcls", "DescribeConfigs",
    "AlterConfigs", "AlterReplicaLogDirs", "DescribeLogDirs", "SaslAuthenticate", "CreatePartitions",
    "CreateDelegationToken", "RenewDelegationToken", "ExpireDelegationToken", "DescribeDelegationToken",
    "DeleteGroups", "ElectLeaders", "IncrementalAlterConfigs", "AlterPartitionReassignments",
    "ListPartitionReassignments", "OffsetDelete", "DescribeClientQuotas", "AlterClientQuotas",
    "DescribeUserScramCredentials", "AlterUserScramCredentials", "Vote", "BeginQuorumEpoch", "EndQuorumEpoch",
    "DescribeQuorum", "AlterPartition", "UpdateFeatures", "Envelope", "FetchSnapshot", "DescribeCluster",
    "DescribeProducers", "BrokerRegistration", "BrokerHeartbeat", "UnregisterBroker", "DescribeTransactions",
    "ListTransactions", "AllocateProducerIds", "ConsumerGroupHeartbeat", "ConsumerGroupDescribe",
    "ControllerRegistration", "GetTelemetrySubscriptions", "PushTelemetry", "AssignReplicasToDirs",
    "ListClientMetricsResources", "DescribeTopicPartitions"};
static_assert(std::size(kApis) == kMaxApiKey + 1, "one name per api key");

// The first flexible version of each API (KIP-482), -1: none.
constexpr std::int8_t kFirstFlexible[] = {
    9, 12, 6, 9, 4, 2, 6, 3, 8, 6,   // Produce .. OffsetFetch
    3, 6, 4, 4, 4, 5, 3, -1, 3, 5,   // FindCoordinator .. CreateTopics
    4, 2, 2, 4, 3, 3, 3, 1, 3, 2,    // DeleteTopics .. DescribeAcls
    2, 2, 4, 2, 2, 2, 2, 2, 2, 2,    // CreateAcls .. RenewDelegationToken
    2, 2, 2, 2, 1, 0, 0, -1, 1, 1,   // ExpireDelegationToken .. AlterClientQuotas
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    // DescribeUserScramCredentials .. DescribeCluster
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    // DescribeProducers .. ControllerRegistration
    0, 0, 0, 0, 0, 0};               // GetTelemetrySubscriptions .. DescribeTopicPartitions
static_assert(std::size(kFirstFlexible) == kMaxApiKey + 1, "one entry per api key");

// Error codes -1 .. 119 (the protocol guide's table).
constexpr const char* kErrors[] = {
    "UNKNOWN_SERVER_ERROR", "NONE", "OFFSET_OUT_OF_RANGE", "CORRUPT_MESSAGE", "UNKNOWN_TOPIC_OR_PARTITION",
    "INVALID_FETCH_SIZE", "LEADER_NOT_AVAILABLE", "NOT_LEADER_OR_FOLLOWER", "REQUEST_TIMED_OUT",
    "BROKER_NOT_AVAILABLE", "REPLICA_NOT_AVAILABLE", "MESSAGE_TOO_LARGE", "STALE_CONTROLLER_EPOCH",
    "OFFSET_METADATA_TOO_LARGE", "NETWORK_EXCEPTION", "COORDINATOR_LOAD_IN_PROGRESS", "COORDINATOR_NOT_AVAILABLE",
    "NOT_COORDINATOR", "INVALID_TOPIC_EXCEPTION", "RECORD_LIST_TOO_LARGE", "NOT_ENOUGH_REPLICAS",
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND", "INVALID_REQUIRED_ACKS", "ILLEGAL_GENERATION",
    "INCONSISTENT_GROUP_PROTOCOL", "INVALID_GROUP_ID", "UNKNOWN_MEMBER_ID", "INVALID_SESSION_TIMEOUT",
    "REBALANCE_IN_PROGRESS", "INVALID_COMMIT_OFFSET_SIZE", "TOPIC_AUTHORIZATION_FAILED",
    "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED", "INVALID_TIMESTAMP",
    "UNSUPPORTED_SASL_MECHANISM", "ILLEGAL_SASL_STATE", "UNSUPPORTED_VERSION", "TOPIC_ALREADY_EXISTS",
    "INVALID_PARTITIONS", "INVALID_REPLICATION_FACTOR", "INVALID_REPLICA_ASSIGNMENT", "INVALID_CONFIG",
    "NOT_CONTROLLER", "INVALID_REQUEST", "UNSUPPORTED_FOR_MESSAGE_FORMAT", "POLICY_VIOLATION",
    "OUT_OF_ORDER_SEQUENCE_NUMBER", "DUPLICATE_SEQUENCE_NUMBER", "INVALID_PRODUCER_EPOCH", "INVALID_TXN_STATE",
    "INVALID_PRODUCER_ID_MAPPING", "INVALID_TRANSACTION_TIMEOUT", "CONCURRENT_TRANSACTIONS",
    "TRANSACTION_COORDINATOR_FENCED", "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", "SECURITY_DISABLED",
    "OPERATION_NOT_ATTEMPTED", "KAFKA_STORAGE_ERROR", "LOG_DIR_NOT_FOUND", "SASL_AUTHENTICATION_FAILED",
    "UNKNOWN_PRODUCER_ID", "REASSIGNMENT_IN_PROGRESS", "DELEGATION_TOKEN_AUTH_DISABLED",
    "DELEGATION_TOKEN_NOT_FOUND", "DELEGATION_TOKEN_OWNER_MISMATCH", "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED",
    "DELEGATION_TOKEN_AUTHORIZATION_FAILED", "DELEGATION_TOKEN_EXPIRED", "INVALID_PRINCIPAL_TYPE",
    "NON_EMPTY_GROUP", "GROUP_ID_NOT_FOUND", "FETCH_SESSION_ID_NOT_FOUND", "INVALID_FETCH_SESSION_EPOCH",
    "LISTENER_NOT_FOUND", "TOPIC_DELETION_DISABLED", "FENCED_LEADER_EPOCH", "UNKNOWN_LEADER_EPOCH",
    "UNSUPPORTED_COMPRESSION_TYPE", "STALE_BROKER_EPOCH", "OFFSET_NOT_AVAILABLE", "MEMBER_ID_REQUIRED",
    "PREFERRED_LEADER_NOT_AVAILABLE", "GROUP_MAX_SIZE_REACHED", "FENCED_INSTANCE_ID",
    "ELIGIBLE_LEADERS_NOT_AVAILABLE", "ELECTION_NOT_NEEDED", "NO_REASSIGNMENT_IN_PROGRESS",
    "GROUP_SUBSCRIBED_TO_TOPIC", "INVALID_RECORD", "UNSTABLE_OFFSET_COMMIT", "THROTTLING_QUOTA_EXCEEDED",
    "PRODUCER_FENCED", "RESOURCE_NOT_FOUND", "DUPLICATE_RESOURCE", "UNACCEPTABLE_CREDENTIAL",
    "INCONSISTENT_VOTER_SET", "INVALID_UPDATE_VERSION", "FEATURE_UPDATE_FAILED",
    "PRINCIPAL_DESERIALIZATION_FAILURE", "SNAPSHOT_NOT_FOUND", "POSITION_OUT_OF_RANGE", "UNKNOWN_TOPIC_ID",
    "DUPLICATE_BROKER_REGISTRATION", "BROKER_ID_NOT_REGISTERED", "INCONSISTENT_TOPIC_ID",
    "INCONSISTENT_CLUSTER_ID", "TRANSACTIONAL_ID_NOT_FOUND", "FETCH_SESSION_TOPIC_ID_ERROR", "INELIGIBLE_REPLICA",
    "NEW_LEADER_ELECTED", "OFFSET_MOVED_TO_TIERED_STORAGE", "FENCED_MEMBER_EPOCH", "UNRELEASED_INSTANCE_ID",
    "UNSUPPORTED_ASSIGNOR", "STALE_MEMBER_EPOCH", "MISMATCHED_ENDPOINT_TYPE", "UNSUPPORTED_ENDPOINT_TYPE",
    "UNKNOWN_CONTROLLER_ID", "UNKNOWN_SUBSCRIPTION_ID", "TELEMETRY_TOO_LARGE", "INVALID_REGISTRATION"};
static_assert(std::size(kErrors) == 121, "codes -1 .. 119");

std::uint32_t be32(std::string_view s, std::size_t at) {
    return (std::uint32_t{static_cast<unsigned char>(s[at])} << 24) |
           (std::uint32_t{static_cast<unsigned char>(s[at + 1])} << 16) |
           (std::uint32_t{static_cast<unsigned char>(s[at + 2])} << 8) | static_cast<unsigned char>(s[at + 3]);
}
std::int16_t be16(std::string_view s, std::size_t at) {
    return static_cast<std::int16_t>((static_cast<unsigned char>(s[at]) << 8) | static_cast<unsigned char>(s[at + 1]));
}

// Reads the primitive types of the protocol over a message's first bytes. Reading past
// them is "cut" when the message went on in bytes not held, "bad" (malformed) when they
// were all of it; either way the reader stops and every later read gives nothing.
class Reader {
public:
    Reader(std::string_view d, std::size_t pos, bool whole) : d_(d), pos_(std::min(pos, d.size())), whole_(whole) {}
    [[nodiscard]] bool ok() const { return state_ == State::Ok; }
    [[nodiscard]] bool cut() const { return state_ == State::Cut; }
    void bad() { state_ = State::Bad; }
    void skip(std::uint64_t n) {
        if (need(n)) pos_ += static_cast<std::size_t>(n);
    }
    std::int64_t integer(int n) {
        if (!need(static_cast<std::uint64_t>(n))) return 0;
        std::uint64_t v = 0;
        for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(d_[pos_++]);
        // sign-extend from n bytes
        const int shift = 64 - 8 * n;
        return static_cast<std::int64_t>(v << shift) >> shift;
    }
    std::int16_t i16() { return static_cast<std::int16_t>(integer(2)); }
    std::int32_t i32() { return static_cast<std::int32_t>(integer(4)); }
    void i64() { skip(8); }
    std::uint64_t uvarint() {
        std::uint64_t v = 0;
        for (int shift = 0; shift < 35; shift += 7) {
            if (!need(1)) return 0;
            const auto b = static_cast<unsigned char>(d_[pos_++]);
            v |= std::uint64_t{b & 0x7fu} << shift;
            if (!(b & 0x80)) return v;
        }
        bad();  // longer than an unsigned 32-bit varint
        return 0;
    }
    // A (nullable) STRING / COMPACT_STRING: its bytes, or nullopt (null, or not readable).
    std::optional<std::string_view> string(bool flex) {
        const std::int64_t n = flex ? static_cast<std::int64_t>(uvarint()) - 1 : i16();
        if (!ok()) return std::nullopt;
        if (n < 0) {
            if (n < -1) bad();
            return std::nullopt;
        }
        if (!need(static_cast<std::uint64_t>(n))) return std::nullopt;
        auto s = d_.substr(pos_, static_cast<std::size_t>(n));
        pos_ += static_cast<std::size_t>(n);
        return s;
    }
    // (nullable) BYTES / COMPACT_BYTES, RECORDS: skipped.
    void bytes(bool flex) {
        const std::int64_t n = flex ? static_cast<std::int64_t>(uvarint()) - 1 : i32();
        if (!ok()) return;
        if (n < -1) return bad();
        if (n > 0) skip(static_cast<std::uint64_t>(n));
    }
    // An ARRAY / COMPACT_ARRAY's element count (null: none).
    std::int64_t array(bool flex) {
        const std::int64_t n = flex ? static_cast<std::int64_t>(uvarint()) - 1 : i32();
        if (!ok()) return 0;
        if (n < -1) {
            bad();
            return 0;
        }
        return std::max<std::int64_t>(n, 0);
    }
    // An array of fixed-size elements (INT32 replicas, INT64 offsets): skipped.
    void fixedArray(bool flex, std::uint64_t size) {
        const auto n = static_cast<std::uint64_t>(array(flex));
        if (ok()) skip(n * size);
    }
    // A structure's tagged fields (flexible versions only): skipped.
    void tagged(bool flex) {
        if (!flex) return;
        const std::uint64_t n = uvarint();
        for (std::uint64_t i = 0; i < n && ok(); ++i) {
            (void)uvarint();  // tag
            skip(uvarint());
        }
    }

private:
    enum class State { Ok, Cut, Bad };
    bool need(std::uint64_t n) {
        if (state_ != State::Ok) return false;
        if (n <= d_.size() - pos_) return true;
        state_ = whole_ ? State::Bad : State::Cut;
        return false;
    }
    std::string_view d_;
    std::size_t pos_;
    bool whole_;
    State state_ = State::Ok;
};

// The first non-zero error code met, and whether every error code of the response was
// read (what follows the last one - a Fetch's last records, offsets - may be cut).
struct Errors {
    int first = 0;
    bool all_seen = false;
    void see(std::int16_t code) {
        if (code != 0 && first == 0) first = code;
    }
};

// Loops over an array's elements while the reader can go on (every element reads at
// least a byte, so a count larger than the bytes ends with the reader); the element
// is told whether it is the last one.
template <class F>
void each(Reader& r, bool flex, F&& element) {
    const std::int64_t n = r.array(flex);
    for (std::int64_t i = 0; i < n && r.ok(); ++i) element(i + 1 == n);
}

void metadataResponse(Reader& r, int v, Errors& e) {
    const bool f = v >= 9;
    if (v >= 3) r.i32();  // throttle_time_ms
    each(r, f, [&](bool) {  // brokers
        r.i32();
        (void)r.string(f);
        r.i32();
        if (v >= 1) (void)r.string(f);  // rack
        r.tagged(f);
    });
    if (v >= 2) (void)r.string(f);  // cluster_id
    if (v >= 1) r.i32();            // controller_id
    std::int64_t topics = 0;
    each(r, f, [&](bool last_topic) {  // topics
        ++topics;
        e.see(r.i16());
        (void)r.string(f);
        if (v >= 10) r.skip(16);  // topic_id
        if (v >= 1) r.skip(1);    // is_internal
        std::int64_t partitions = 0;
        each(r, f, [&](bool last) {  // partitions
            ++partitions;
            e.see(r.i16());
            if (last_topic && last && v < 13 && r.ok()) e.all_seen = true;  // (v13+: a code at the end)
            r.i32();
            r.i32();
            if (v >= 7) r.i32();  // leader_epoch
            r.fixedArray(f, 4);   // replica_nodes
            r.fixedArray(f, 4);   // isr_nodes
            if (v >= 5) r.fixedArray(f, 4);  // offline_replicas
            r.tagged(f);
        });
        if (last_topic && partitions == 0 && v < 13 && r.ok()) e.all_seen = true;
        if (v >= 8) r.i32();  // topic_authorized_operations
        r.tagged(f);
    });
    if (topics == 0 && v < 13 && r.ok()) e.all_seen = true;
    if (v >= 8 && v <= 10) r.i32();  // cluster_authorized_operations
    if (v >= 13) e.see(r.i16());
    r.tagged(f);
}

void produceResponse(Reader& r, int v, Errors& e) {
    const bool f = v >= 9;
    each(r, f, [&](bool last_topic) {
        if (v >= 13)
            r.skip(16);
        else
            (void)r.string(f);
        each(r, f, [&](bool last) {
            r.i32();
            e.see(r.i16());
            if (last_topic && last && r.ok()) e.all_seen = true;
            r.i64();              // base_offset
            if (v >= 2) r.i64();  // log_append_time_ms
            if (v >= 5) r.i64();  // log_start_offset
            if (v >= 8) {
                each(r, f, [&](bool) {  // record_errors
                    r.i32();
                    (void)r.string(f);
                    r.tagged(f);
                });
                (void)r.string(f);  // error_message
            }
            r.tagged(f);
        });
        r.tagged(f);
    });
    if (v >= 1) r.i32();
    r.tagged(f);
}

void fetchResponse(Reader& r, int v, Errors& e) {
    const bool f = v >= 12;
    if (v >= 1) r.i32();
    if (v >= 7) {
        e.see(r.i16());
        r.i32();  // session_id
    }
    each(r, f, [&](bool last_topic) {
        if (v >= 13)
            r.skip(16);
        else
            (void)r.string(f);
        each(r, f, [&](bool last) {
            r.i32();
            e.see(r.i16());
            if (last_topic && last && r.ok()) e.all_seen = true;  // (the records, the rest, may be cut)
            r.i64();              // high_watermark
            if (v >= 4) r.i64();  // last_stable_offset
            if (v >= 5) r.i64();  // log_start_offset
            if (v >= 4)
                each(r, f, [&](bool) {  // aborted_transactions
                    r.i64();
                    r.i64();
                    r.tagged(f);
                });
            if (v >= 11) r.i32();  // preferred_read_replica
            r.bytes(f);            // records
            r.tagged(f);
        });
        r.tagged(f);
    });
    r.tagged(f);
}

void listOffsetsResponse(Reader& r, int v, Errors& e) {
    const bool f = v >= 6;
    if (v >= 2) r.i32();
    each(r, f, [&](bool last_topic) {
        (void)r.string(f);
        each(r, f, [&](bool last) {
            r.i32();
            e.see(r.i16());
            if (last_topic && last && r.ok()) e.all_seen = true;
            if (v == 0) {
                r.fixedArray(f, 8);  // old_style_offsets
            } else {
                r.i64();
                r.i64();
                if (v >= 4) r.i32();
            }
            r.tagged(f);
        });
        r.tagged(f);
    });
    r.tagged(f);
}

void offsetCommitResponse(Reader& r, int v, Errors& e) {
    const bool f = v >= 8;
    if (v >= 3) r.i32();
    each(r, f, [&](bool) {
        (void)r.string(f);
        each(r, f, [&](bool) {
            r.i32();
            e.see(r.i16());
            r.tagged(f);
        });
        r.tagged(f);
    });
    r.tagged(f);
}

void findCoordinatorResponse(Reader& r, int v, Errors& e) {
    const bool f = v >= 3;
    if (v >= 1) r.i32();
    if (v <= 3) {
        e.see(r.i16());
        return;
    }
    each(r, f, [&](bool) {  // coordinators (v4+)
        (void)r.string(f);
        r.i32();
        (void)r.string(f);
        r.i32();
        e.see(r.i16());
        (void)r.string(f);
        r.tagged(f);
    });
    r.tagged(f);
}

bool legalTopic(std::string_view t) {
    if (t.empty() || t.size() > 249) return false;
    for (char ch : t)
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return false;
    return true;
}

}  // namespace

const char* kafkaApiName(int api_key) {
    return api_key >= 0 && api_key <= kMaxApiKey ? kApis[api_key] : "OTHER";
}

const char* kafkaErrorName(int code) {
    return code >= -1 && code < static_cast<int>(std::size(kErrors)) - 1 ? kErrors[code + 1] : nullptr;
}

bool kafkaFlexible(int api_key, int version) {
    if (api_key < 0 || api_key > kMaxApiKey) return true;  // newer APIs are all flexible
    const int first = kFirstFlexible[api_key];
    return first >= 0 && version >= first;
}

std::optional<KafkaRequest> parseKafkaRequest(std::string_view p, std::uint64_t length) {
    if (p.size() < 14) return std::nullopt;
    const std::uint32_t size = be32(p, 0);
    if (size < 10 || size > kMaxSize || std::uint64_t{size} + 4 != length) return std::nullopt;
    KafkaRequest q;
    q.api_key = be16(p, 4);
    q.api_version = be16(p, 6);
    q.correlation_id = static_cast<std::int32_t>(be32(p, 8));
    if (q.api_key < 0 || q.api_key > kMaxApiKey || q.api_version < 0 || q.api_version > kMaxApiVersion ||
        q.correlation_id < 0)
        return std::nullopt;
    const std::int16_t clen = be16(p, 12);
    if (clen < -1 || (clen >= 0 && 10 + std::uint32_t(clen) > size)) return std::nullopt;
    for (std::size_t i = 0; i < 8 && clen > 0 && i < std::size_t(clen) && 14 + i < p.size(); ++i)
        if (p[14 + i] < 0x20 || p[14 + i] > 0x7e) return std::nullopt;
    const bool f = kafkaFlexible(q.api_key, q.api_version);
    Reader r(p, 14 + static_cast<std::size_t>(std::max<std::int16_t>(clen, 0)), p.size() == length);
    r.tagged(f);  // request header v2
    const int v = q.api_version;
    if (q.api_key == 0) {  // Produce
        if (v >= 3) (void)r.string(f);  // transactional_id
        const std::int16_t acks = r.i16();
        if (r.ok() && acks == 0) q.no_response = true;
        r.i32();
        if (r.array(f) > 0 && v < 13)
            if (auto t = r.string(f); t && legalTopic(*t)) q.topic = std::string(*t);
    } else if (q.api_key == 1) {  // Fetch
        const bool ff = v >= 12;
        if (v <= 14) r.i32();  // replica_id
        r.i32();
        r.i32();
        if (v >= 3) r.i32();
        if (v >= 4) r.skip(1);
        if (v >= 7) {
            r.i32();
            r.i32();
        }
        if (r.array(ff) > 0 && v <= 12)
            if (auto t = r.string(ff); t && legalTopic(*t)) q.topic = std::string(*t);
    }
    return q;
}

KafkaOutcome parseKafkaResponse(int api_key, int v, std::string_view p, std::uint64_t length) {
    // size, correlation id, and (flexible versions but ApiVersions') the header's tagged fields
    Reader r(p, 8, p.size() >= length);
    if (p.size() < 8) r.skip(1);  // the header was not held: cut (or malformed)
    if (api_key != 18) r.tagged(kafkaFlexible(api_key, v));
    Errors e;
    // APIs whose response starts with its (top-level) error code, after throttle_time_ms
    // from this version on (-1: none before it).
    auto topLevel = [&](int throttle_from) {
        if (throttle_from >= 0 && v >= throttle_from) r.i32();
        e.see(r.i16());
    };
    switch (api_key) {
        case 0: produceResponse(r, v, e); break;
        case 1: fetchResponse(r, v, e); break;
        case 2: listOffsetsResponse(r, v, e); break;
        case 3: metadataResponse(r, v, e); break;
        case 8: offsetCommitResponse(r, v, e); break;
        case 10: findCoordinatorResponse(r, v, e); break;
        case 11: topLevel(2); break;   // JoinGroup
        case 12: topLevel(1); break;   // Heartbeat
        case 13: topLevel(1); break;   // LeaveGroup (its members' codes are not read)
        case 14: topLevel(1); break;   // SyncGroup
        case 17: topLevel(-1); break;  // SaslHandshake
        case 18: topLevel(-1); break;  // ApiVersions (the list of versions after it is not read)
        case 22: topLevel(0); break;   // InitProducerId
        case 25: topLevel(0); break;   // AddOffsetsToTxn
        case 26: topLevel(0); break;   // EndTxn
        case 36: topLevel(-1); break;  // SaslAuthenticate
        default: return {};            // not parsed: unknown
    }
    if (!r.ok() && !r.cut()) return {};  // malformed: what was read is not trusted
    if (e.first != 0) return {KafkaOutcome::Kind::Error, e.first};
    if (r.ok() || e.all_seen) return {KafkaOutcome::Kind::Ok, 0};
    return {};
}

namespace {

class KafkaParser;

class KafkaDirection final : public FramedProtocol {
public:
    KafkaDirection(KafkaParser& parser, bool sending) : parser_(parser), sending_(sending) {}
    [[nodiscard]] std::size_t headerBytes() const override { return 4; }
    [[nodiscard]] std::optional<std::uint64_t> messageLength(std::string_view h) const override {
        const std::uint32_t size = be32(h, 0);
        if (size < 4 || size > kMaxSize) return std::nullopt;
        return std::uint64_t{size} + 4;
    }
    [[nodiscard]] bool startsMessage(std::string_view head) const override;
    void onMessage(std::string_view prefix, std::uint64_t length, std::uint64_t ts_ns) override;

private:
    KafkaParser& parser_;
    bool sending_;
};

class KafkaParser final : public MessageParser {
public:
    KafkaParser(ExchangeSink& sink, std::size_t max_pending) : sink_(sink), max_pending_(std::max<std::size_t>(max_pending, 1)) {}

    void feed(bool sending, const Chunk& c) override {
        (sending ? send_framer_ : recv_framer_).feed(sending ? send_dir_ : recv_dir_, c);
        counters_.desyncs = send_framer_.desyncs() + recv_framer_.desyncs() + not_requests_;
    }

    void close() override {
        counters_.unanswered += pending_.size();
        pending_.clear();
    }

    // After lost framing: a chunk that starts with a request (the request direction), or
    // with the response to a request awaiting one.
    [[nodiscard]] bool startsMessage(bool sending, std::string_view head) const {
        if (head.size() < 8) return false;
        const std::uint64_t length = std::uint64_t{be32(head, 0)} + 4;
        if (!client_sending_ || sending == *client_sending_) return parseKafkaRequest(head, length).has_value();
        const auto corr = static_cast<std::int32_t>(be32(head, 4));
        return length >= 8 && length <= kMaxSize + 4 &&
               std::any_of(pending_.begin(), pending_.end(), [&](const Pending& p) { return p.corr == corr; });
    }

    void message(bool sending, std::string_view p, std::uint64_t length, std::uint64_t ts) {
        if (!client_sending_) {
            if (!parseKafkaRequest(p, length)) return;  // (the kernel saw a request first: this is a response)
            client_sending_ = sending;
        }
        if (sending == *client_sending_)
            request(p, length, ts);
        else
            response(p, length, ts);
    }

private:
    struct Pending {
        std::int32_t corr = 0;
        int key = 0, version = 0;
        std::string topic;
        std::uint64_t ts = 0, bytes = 0;
    };

    Exchange exchangeOf(Pending&& q) const {
        Exchange e;
        e.client = *client_sending_;
        e.method = kafkaApiName(q.key);
        e.path = q.topic.empty() ? e.method : std::move(q.topic);
        e.request_ns = q.ts;
        e.request_bytes = q.bytes;
        return e;
    }

    void request(std::string_view p, std::uint64_t length, std::uint64_t ts) {
        auto q = parseKafkaRequest(p, length);
        if (!q) {  // not a request where one must be: the framing is suspect
            ++not_requests_;
            counters_.desyncs = send_framer_.desyncs() + recv_framer_.desyncs() + not_requests_;
            return;
        }
        Pending pd{q->correlation_id, q->api_key, q->api_version, std::move(q->topic), ts, length};
        if (q->no_response) {  // acks=0: fire and forget, its outcome is never known
            Exchange e = exchangeOf(std::move(pd));
            e.response_ns = ts;
            e.outcome_unknown = true;
            sink_.onExchange(std::move(e));
            return;
        }
        if (pending_.size() >= max_pending_) {
            pending_.pop_front();
            ++counters_.unanswered;
        }
        pending_.push_back(std::move(pd));
    }

    void response(std::string_view p, std::uint64_t length, std::uint64_t ts) {
        if (p.size() < 8) {  // the correlation id was not captured
            ++counters_.unmatched_responses;
            return;
        }
        const auto corr = static_cast<std::int32_t>(be32(p, 4));
        auto it = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& q) { return q.corr == corr; });
        if (it == pending_.end()) {
            ++counters_.unmatched_responses;
            return;
        }
        // The broker answers in order: the requests before this one were answered in bytes
        // that were not captured.
        counters_.unanswered += static_cast<std::uint64_t>(it - pending_.begin());
        Pending q = std::move(*it);
        pending_.erase(pending_.begin(), it + 1);
        const KafkaOutcome o = parseKafkaResponse(q.key, q.version, p, length);
        Exchange e = exchangeOf(std::move(q));
        e.response_ns = ts;
        e.response_bytes = length;
        if (o.kind == KafkaOutcome::Kind::Error) {
            e.error = true;
            e.error_code = std::to_string(o.error_code);
        } else if (o.kind == KafkaOutcome::Kind::Unknown) {
            e.outcome_unknown = true;
        }
        sink_.onExchange(std::move(e));
    }

    ExchangeSink& sink_;
    std::size_t max_pending_;
    std::optional<bool> client_sending_;
    std::deque<Pending> pending_;  // oldest first
    std::uint64_t not_requests_ = 0;
    KafkaDirection send_dir_{*this, true}, recv_dir_{*this, false};
    Framer send_framer_, recv_framer_;
};

bool KafkaDirection::startsMessage(std::string_view head) const { return parser_.startsMessage(sending_, head); }

void KafkaDirection::onMessage(std::string_view prefix, std::uint64_t length, std::uint64_t ts_ns) {
    parser_.message(sending_, prefix, length, ts_ns);
}

}  // namespace

std::unique_ptr<MessageParser> makeKafkaParser(ExchangeSink& sink, std::size_t max_pending) {
    return std::make_unique<KafkaParser>(sink, max_pending);
}

}  // namespace netprobe::l7
