from providers.sse import SSEEvent, SSEParser, iter_sse_bytes


def iter_sse(lines):
    """Events from decoded lines, fed one by one."""
    parser = SSEParser()
    return [event for event in map(parser.feed_line, lines) if event is not None]


def test_it_parses_events_from_lines():
    lines = ['data: {"a": 1}', "", "event: ping", "data: {}", "id: 7", "", "data: [DONE]", ""]
    events = list(iter_sse(lines))
    assert events == [
        SSEEvent(data='{"a": 1}'),
        SSEEvent(data="{}", event="ping", id="7"),
        SSEEvent(data="[DONE]", id="7"),
    ]
    assert events[0].json() == {"a": 1}
    assert events[2].is_done
    assert not events[0].is_done


def test_it_joins_multi_line_data_and_skips_comments():
    lines = [": keep-alive", "data: first", "data:second", "data:  third", "", ": bye"]
    assert [e.data for e in iter_sse(lines)] == ["first\nsecond\n third"]


def test_it_ignores_events_without_data():
    assert list(iter_sse(["event: ping", "", "retry: 10", ""])) == []


def test_it_parses_bytes_split_anywhere_with_crlf():
    stream = b'data: {"x": 1}\r\n\r\ndata: two\r\ndata: lines\r\n\r\n: c\r\ndata: [DONE]\r\n\r\n'
    for size in (1, 2, 3, 7, len(stream)):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert [e.data for e in iter_sse_bytes(chunks)] == ['{"x": 1}', "two\nlines", "[DONE]"]


def test_it_handles_bare_cr_line_endings():
    assert [e.data for e in iter_sse_bytes([b"data: a\r\rdata: b\r\r"])] == ["a", "b"]


def test_it_drops_an_event_cut_off_by_the_end_of_the_stream():
    assert [e.data for e in iter_sse_bytes([b'data: {"ok": 1}\n\ndata: {"trunc'])] == ['{"ok": 1}']


def test_it_strips_a_leading_byte_order_mark():
    parser = SSEParser()
    assert parser.feed("\ufeffdata: x\n\n".encode()) == [SSEEvent(data="x")]
