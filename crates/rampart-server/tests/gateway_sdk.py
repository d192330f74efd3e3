"""The official OpenAI and Anthropic Python SDKs as an agent, pointed at Rampart with base_url.

Reads RAMPART_URL, RAMPART_TOKEN and PROMPT from the environment; prints one JSON object with
what each call returned to the agent. The tests check it against what the upstream received.
"""

import json
import os

import anthropic
import openai

url = os.environ["RAMPART_URL"]
token = os.environ["RAMPART_TOKEN"]
prompt = os.environ["PROMPT"]
system = "You are a careful assistant."
out = {}

oa = openai.OpenAI(base_url=url + "/v1", api_key=token, max_retries=0)
messages = [
    {"role": "system", "content": system},
    {"role": "user", "content": prompt},
]

r = oa.chat.completions.create(model="echo-7", messages=messages)
out["openai"] = r.choices[0].message.content
out["openai_usage"] = [r.usage.prompt_tokens, r.usage.completion_tokens]

text = ""
for chunk in oa.chat.completions.create(
    model="echo-1", messages=messages, stream=True, stream_options={"include_usage": True}
):
    for c in chunk.choices:
        text += c.delta.content or ""
out["openai_stream"] = text

# A tool round trip: the earlier tool result (with personal data) goes out on the tool_output
# channel, and the answer is a streamed tool call whose argument deltas are cut at every
# character.
tools = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a customer up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
]
history = messages + [
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "lookup", "arguments": json.dumps({"q": prompt})},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_0", "content": "record: " + prompt},
    {"role": "user", "content": prompt},
]
args = ""
for chunk in oa.chat.completions.create(model="echo-1", messages=history, tools=tools, stream=True):
    for c in chunk.choices:
        for tc in c.delta.tool_calls or []:
            args += tc.function.arguments or ""
out["openai_tool_args"] = json.loads(args)

an = anthropic.Anthropic(base_url=url, api_key=token, max_retries=0)
r = an.messages.create(
    model="echo-5",
    max_tokens=256,
    system=system,
    messages=[{"role": "user", "content": prompt}],
)
out["anthropic"] = r.content[0].text
out["anthropic_usage"] = [r.usage.input_tokens, r.usage.output_tokens]

with an.messages.stream(
    model="echo-1",
    max_tokens=256,
    system=system,
    messages=[{"role": "user", "content": [{"type": "text", "text": prompt}]}],
) as s:
    out["anthropic_stream"] = "".join(s.text_stream)

# A refused call surfaces as the SDK's own error type, with the problem's status.
try:
    openai.OpenAI(base_url=url + "/v1", api_key="not-a-token", max_retries=0).chat.completions.create(
        model="echo-1", messages=messages
    )
    out["bad_token"] = None
except openai.AuthenticationError as e:
    out["bad_token"] = e.status_code

print(json.dumps(out))
