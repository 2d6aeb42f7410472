using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

/// <summary>
/// The proxy never puts a close code on the wire that a peer may not send (RFC 6455 §7.4): answering an
/// unanswered Close, it echoes a sendable code. A Close with any other code is a protocol error (1002 at
/// once, the Close not forwarded; BadInput/BadFrameTests), so the client gets 1002 either way.
/// </summary>
public sealed class CloseCodeTests(ITestOutputHelper output)
{
    // Only the client is pinged, and not within the test: the silent backend is never reaped, so only
    // the handshake bound acts.
    private static readonly Heartbeat s_heartbeat = new(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(600));

    [Theory]
    // Sendable (1000–1003, 1007–1014, 3000–4999): echoed.
    [InlineData(1000, 1000)]
    [InlineData(1001, 1001)]
    [InlineData(1003, 1003)]
    [InlineData(1007, 1007)]
    [InlineData(1014, 1014)]
    [InlineData(3000, 3000)]
    [InlineData(4999, 4999)]
    // Never sendable: 1002 (protocol error) instead.
    [InlineData(999, 1002)]
    [InlineData(1004, 1002)]
    [InlineData(1005, 1002)]
    [InlineData(1006, 1002)]
    [InlineData(1015, 1002)]
    [InlineData(1016, 1002)]
    [InlineData(2999, 1002)]
    [InlineData(5000, 1002)]
    [InlineData(65535, 1002)]
    // An empty Close (no code): an empty Close.
    [InlineData(null, null)]
    public async Task The_proxys_answer_to_an_unanswered_close_echoes_a_sendable_code_and_sends_1002_for_any_other(int? sent, int? expected)
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat, legs: "Client");
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/silent"));
        await fixture.Probe.Accepted.WaitAsync(TimeSpan.FromSeconds(5));

        await client.SendFrameAsync(RawFrame.Close, sent is { } code ? RawWebSocket.ClosePayload(code) : []);
        var answer = await client.ReceiveSkippingPingsAsync(s_heartbeat.CloseTimeout + Heartbeat.Slack);

        Assert.NotNull(answer);
        Assert.Equal(RawFrame.Close, answer!.Opcode);
        Assert.False(answer.Masked, "frames toward the client are not masked");
        if (expected is { } code2)
        {
            Assert.True(answer.Payload.Length >= 2, $"expected Close {code2}, got an empty Close");
            Assert.Equal(code2, answer.CloseCode);
        }
        else
        {
            Assert.True(answer.Payload.Length == 0, $"expected an empty Close, got code {answer.CloseCode} '{answer.CloseReason}'");
        }

        Assert.True(await client.WaitForEndOfStreamAsync(s_heartbeat.CloseTimeout + Heartbeat.Slack), "the client's connection must end");
    }
}
