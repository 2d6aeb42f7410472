using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

/// <summary>How the bytes of a Close and the frame that follows it are cut into socket writes.</summary>
public enum AfterCloseArrangement
{
    /// <summary>Close and a Text frame in one write (one buffer).</summary>
    CloseAndTextInOneWrite,

    /// <summary>
    /// Close in one write, a Text frame in the next one right after. Loopback may still deliver both in
    /// one read, so a relay that only drops what arrives in a later read fails this case some of the time.
    /// </summary>
    TextInTheNextWrite,

    /// <summary>Close and a Ping in one write.</summary>
    CloseAndPingInOneWrite,

    /// <summary>The Close but its last byte in one write; that last byte and a Text frame in the next.</summary>
    CloseLastByteSharesAWriteWithText,
}

/// <summary>Nothing a peer sends after its Close reaches the other peer (RFC 6455 §5.5.1), however the bytes arrive.</summary>
public sealed class NothingAfterCloseTests(ITestOutputHelper output)
{
    // Pings far away: the only frames on the wire are the peers'. The other peer never answers the
    // Close, so the proxy ends both connections after CloseTimeout.
    private static readonly Heartbeat s_heartbeat = new(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(600));

    [Theory]
    [InlineData(AfterCloseArrangement.CloseAndTextInOneWrite)]
    [InlineData(AfterCloseArrangement.TextInTheNextWrite)]
    [InlineData(AfterCloseArrangement.CloseAndPingInOneWrite)]
    [InlineData(AfterCloseArrangement.CloseLastByteSharesAWriteWithText)]
    public async Task Nothing_the_client_sends_after_its_close_reaches_the_backend(AfterCloseArrangement arrangement)
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat);
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/raw"));
        var backend = new RawFrameReader(await fixture.Probe.RawStream.WaitAsync(TimeSpan.FromSeconds(5)));

        var close = await WriteCloseThenMoreAsync(b => client.SendRawAsync(b), arrangement, mask: true);

        var got = await backend.ReadUntilEndAsync(s_heartbeat.CloseTimeout + Heartbeat.Slack + TimeSpan.FromSeconds(1));
        AssertOnlyTheClose(close, got, "the backend");
    }

    [Theory]
    [InlineData(AfterCloseArrangement.CloseAndTextInOneWrite)]
    [InlineData(AfterCloseArrangement.TextInTheNextWrite)]
    [InlineData(AfterCloseArrangement.CloseAndPingInOneWrite)]
    [InlineData(AfterCloseArrangement.CloseLastByteSharesAWriteWithText)]
    public async Task Nothing_the_backend_sends_after_its_close_reaches_the_client(AfterCloseArrangement arrangement)
    {
        await using var fixture = await RelayFixture.StartAsync(output, s_heartbeat);
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/raw"));
        var backendStream = await fixture.Probe.RawStream.WaitAsync(TimeSpan.FromSeconds(5));

        var close = await WriteCloseThenMoreAsync(b => backendStream.WriteRawAsync(b), arrangement, mask: false);

        var got = await client.ReadUntilEndAsync(s_heartbeat.CloseTimeout + Heartbeat.Slack + TimeSpan.FromSeconds(1));
        AssertOnlyTheClose(close, got, "the client");
    }

    // Writes Close 1000 and a frame after it as arranged; returns the Close as written.
    private static async Task<byte[]> WriteCloseThenMoreAsync(Func<byte[], Task> write, AfterCloseArrangement arrangement, bool mask)
    {
        var close = RawWebSocket.EncodeFrame(RawFrame.Close, RawWebSocket.ClosePayload(1000, "bye"), mask: mask);
        var text = RawWebSocket.EncodeFrame(RawFrame.Text, "after the close"u8, mask: mask);
        var ping = RawWebSocket.EncodeFrame(RawFrame.Ping, "after the close"u8, mask: mask);
        switch (arrangement)
        {
            case AfterCloseArrangement.CloseAndTextInOneWrite:
                await write([.. close, .. text]);
                break;
            case AfterCloseArrangement.TextInTheNextWrite:
                await write(close);
                await write(text);
                break;
            case AfterCloseArrangement.CloseAndPingInOneWrite:
                await write([.. close, .. ping]);
                break;
            case AfterCloseArrangement.CloseLastByteSharesAWriteWithText:
                await write(close[..^1]);
                await write([close[^1], .. text]);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(arrangement));
        }

        return close;
    }

    private static void AssertOnlyTheClose(byte[] close, RawFramesRead got, string who)
    {
        Assert.True(got.Frames.Count >= 1 && got.Frames[0].Opcode == RawFrame.Close, $"{who} must get the Close first; got {got}");
        Assert.True(got.Frames[0].Wire.AsSpan().SequenceEqual(close), $"{who} must get the Close byte for byte; got {got.Frames[0]}");
        Assert.True(got.Frames.Count == 1, $"{who} must get nothing after the Close; got {got}");
        Assert.True(got.Ended, $"{who}'s connection must end once the unanswered handshake times out; got {got}");
    }
}
