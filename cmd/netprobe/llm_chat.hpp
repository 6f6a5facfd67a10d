// `netprobe ask` with an LLM (docs/cli.md, "With an LLM"): the chat-completions client
// (cpp-httplib; TLS; the answer's size bounded; a hard deadline: a watchdog stops the
// request when the time is up, whatever the server does), the run of the loop
// (assistant/llm.hpp) with the agent's API as its tools, and how its answer is shown.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <netprobe/assistant/llm.hpp>
#include <netprobe/util/error.hpp>

#include "cli.hpp"

namespace netprobe::cli::llm {

// An OpenAI-compatible server's URL -> where to POST: "http://127.0.0.1:8080" and
// "http://127.0.0.1:8080/v1" -> /v1/chat/completions; a URL that ends with
// /chat/completions is used as it is; another path gets /chat/completions appended.
struct ChatUrl {
    std::string base;  // scheme://host:port
    std::string path;  // /v1/chat/completions
    [[nodiscard]] std::string full() const { return base + path; }
};
[[nodiscard]] Result<ChatUrl> parseChatUrl(std::string_view url);

struct ChatClient {
    ChatUrl url;
    std::string key;      // sent as "Authorization: Bearer KEY" (never printed)
    std::string ca_file;  // the CA of an https endpoint (else the system's)
    std::size_t max_response_bytes = 8 * 1024 * 1024;
};

// One POST of a chat-completions request. The error's code is ETIMEDOUT when it did not
// finish within timeout.
[[nodiscard]] Result<nlohmann::json> chatCompletion(const ChatClient& client, const nlohmann::json& request,
                                                    std::chrono::milliseconds timeout);

// The answer for a terminal: the text, the calls it made, the verification of its figures.
[[nodiscard]] std::string answerText(const assistant::LlmAnswer& a, const std::string& endpoint, bool wide, bool color);
// -o json: {question, mode: "llm", why, text, model, endpoint, rounds, tool_calls, verification, anonymized, placeholders}
[[nodiscard]] nlohmann::json answerJson(const std::string& question, const std::string& why,
                                        const std::string& endpoint, const assistant::LlmAnswer& a);
// -o json of a failure: {question, mode: "llm", why, endpoint, error: {kind, message}, tool_calls}
[[nodiscard]] nlohmann::json failureJson(const std::string& question, const std::string& why,
                                         const std::string& endpoint, const assistant::LlmFailure& f);
[[nodiscard]] int exitCode(const assistant::LlmAnswer& a);
[[nodiscard]] int exitCode(const assistant::LlmFailure& f);

// Asks the model (inv.llm), prints the answer or the failure; returns the exit code.
// why: why the LLM answers ("--llm=always", or the offline parser's refusal).
int run(const Invocation& inv, const std::string& why);

}  // namespace netprobe::cli::llm
