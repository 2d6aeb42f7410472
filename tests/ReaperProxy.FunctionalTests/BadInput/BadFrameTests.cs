using System.Buffers.Binary;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using ReaperProxy.FunctionalTests.Infrastructure;
using ReaperProxy.FunctionalTests.Relay;

namespace ReaperProxy.FunctionalTests.BadInput;

/// <summary>Which peer sends the bad input.</summary>
public enum Sender
{
    Client,
    Backend,
}

/// <summary>
/// docs/reliability.md §1, the frame rows: each input in both directions, raw client ⇄ proxy ⇄ raw backend,
/// with a healthy WebSocket open beside it on the same proxy. Frames that break RFC 6455 close both legs with
/// 1002 and nothing from the bad frame on is forwarded; inputs whose frame boundaries stay certain and
/// whose meaning is the endpoints' business pass through byte for byte.
/// </summary>
/// <remarks>One proxy for the whole class (the cases run one after another): each case opens its own pair and neighbour.</remarks>
public sealed class BadFrameTests(BadFrameTests.SharedProxy shared) : IClassFixture<BadFrameTests.SharedProxy>
{
    // No ping within a test: the only frames on the wire are the peers' and the proxy's Closes.
    private static readonly Heartbeat s_heartbeat = new(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(800));

    /// <summary>The proxy and backend the cases share.</summary>
    public sealed class SharedProxy : IAsyncLifetime
    {
        public RelayFixture Fixture { get; private set; } = null!;

        public async Task InitializeAsync() => Fixture = await RelayFixture.StartAsync(output: null, s_heartbeat);

        public async Task DisposeAsync() => await Fixture.DisposeAsync();
    }

    private static readonly string[] s_protocolErrors =
    [
        "reserved data opcode 0x3",
        "reserved control opcode 0xB",
        "control frame over 125 bytes",
        "fragmented control frame",
        "continuation with no message open",
        "new data message inside a fragmented one",
        "64-bit length with the top bit set",
        "frame masked the wrong way for its direction",
        "Close with a 1-byte payload",
        "Close with code 1005",
        "Close with code 2999",
        "Close with a reason that is not UTF-8",
    ];

    private static readonly string[] s_passedThrough =
    [
        "16-bit length for a 5-byte payload",
        "64-bit length for a 5-byte payload",
        "RSV bits without a negotiated extension",
        "pong larger than any ping",
        "unsolicited pong of the proxy's payload size",
        "text message that is not UTF-8",
    ];

    public static TheoryData<string, Sender> ProtocolErrors() => Both(s_protocolErrors);

    public static TheoryData<string, Sender> PassedThrough() => Both(s_passedThrough);

    public static TheoryData<Sender> Senders() => [Sender.Client, Sender.Backend];

    [Theory]
    [MemberData(nameof(ProtocolErrors))]
    public async Task A_frame_that_breaks_RFC_6455_closes_both_legs_with_1002_and_nothing_from_it_on_is_forwarded(string input, Sender sender)
    {
        var fixture = shared.Fixture;
        var errorsBefore = fixture.Logs.WithEventId(2006).Count();
        using var closed = Collector(fixture, "reaper.connections.closed");
        await using var neighbour = await HealthyNeighbour.OpenAsync(fixture.Proxy);
        await using var pair = await RawPair.OpenAsync(fixture, sender);

        var good = RawWebSocket.EncodeFrame(RawFrame.Text, "good"u8, mask: pair.SenderMasks);
        var (forwarded, bad) = ProtocolError(input, pair.SenderMasks);
        var after = RawWebSocket.EncodeFrame(RawFrame.Text, "after"u8, mask: pair.SenderMasks);
        await pair.SendAsync([.. good, .. forwarded, .. bad, .. after]);

        // The receiver: what came before the bad frame, byte for byte, then the proxy's Close 1002.
        var before = new List<byte>();
        RawFrame? frame;
        while ((frame = await pair.ReceiveAsync(TimeSpan.FromSeconds(5))) is { Opcode: not RawFrame.Close })
        {
            before.AddRange(frame.Wire);
        }

        Assert.Equal([.. good, .. forwarded], before.ToArray());
        AssertProxyClose1002(frame, towardBackend: sender == Sender.Client, "the receiver");

        // The sender: the proxy's Close 1002 (read before the receiver answers: a test backend whose
        // connection has ended drops what it had not read yet).
        AssertProxyClose1002(await pair.SenderReceivesAsync(TimeSpan.FromSeconds(5)), towardBackend: sender == Sender.Backend, "the sender");

        // The receiver answers; both connections end (the broken sender's answer is not waited for).
        await pair.AnswerCloseAsync();
        var rest = await pair.ReceiverReadsUntilEndAsync(s_heartbeat.CloseTimeout + Heartbeat.Slack);
        Assert.True(rest.Frames.Count == 0 && rest.Ended, $"the receiver must get nothing after the Close and its connection must end; got {rest}");
        var toSender = await pair.SenderReadsUntilEndAsync(s_heartbeat.CloseTimeout + Heartbeat.Slack);
        Assert.True(toSender.Frames.Count == 0 && toSender.Ended, $"the sender must get nothing after the Close and its connection must end; got {toSender}");

        var logged = Assert.Single(fixture.Logs.WithEventId(2006).Skip(errorsBefore));
        Assert.Contains(sender == Sender.Client ? "client->backend" : "backend->client", logged.Message);
        await Eventually.UntilAsync(() => closed.GetMeasurementSnapshot().Any(m => Equals(m.Tags["reason"], "protocol_error")), "reaper.connections.closed{reason=protocol_error}");
        await neighbour.AssertUnaffectedAsync();
    }

    [Theory]
    [MemberData(nameof(PassedThrough))]
    public async Task An_input_whose_frame_boundaries_stay_certain_passes_through_byte_for_byte_and_the_connection_stays_open(string input, Sender sender)
    {
        var fixture = shared.Fixture;
        var errorsBefore = fixture.Logs.WithEventId(2006).Count();
        await using var neighbour = await HealthyNeighbour.OpenAsync(fixture.Proxy);
        await using var pair = await RawPair.OpenAsync(fixture, sender);

        var frames = PassThrough(input, pair.SenderMasks);
        var after = RawWebSocket.EncodeFrame(RawFrame.Text, "after"u8, mask: pair.SenderMasks);
        byte[] sent = [.. frames, .. after];
        await pair.SendAsync(sent);

        var received = new List<byte>();
        for (var i = 0; i < 100 && received.Count < sent.Length; i++)
        {
            var frame = await pair.ReceiveAsync(TimeSpan.FromSeconds(5));
            Assert.True(frame is not null, $"the receiver's connection ended after {received.Count} of {sent.Length} bytes");
            received.AddRange(frame!.Wire);
        }

        Assert.Equal(sent, received.ToArray());

        // Still open both ways: the receiver's answer reaches the sender byte for byte.
        var reply = await pair.ReplyAsync("reply"u8);
        Assert.Equal(reply, (await pair.SenderReceivesAsync(TimeSpan.FromSeconds(5)))?.Wire);
        Assert.Empty(fixture.Logs.WithEventId(2006).Skip(errorsBefore));
        await neighbour.AssertUnaffectedAsync();
    }

    [Theory]
    [MemberData(nameof(Senders))]
    public async Task Bytes_after_a_close_are_dropped_and_the_closing_handshake_completes(Sender sender)
    {
        var fixture = shared.Fixture;
        var errorsBefore = fixture.Logs.WithEventId(2006).Count();
        await using var neighbour = await HealthyNeighbour.OpenAsync(fixture.Proxy);
        await using var pair = await RawPair.OpenAsync(fixture, sender);

        var close = RawWebSocket.EncodeFrame(RawFrame.Close, RawWebSocket.ClosePayload(1000, "bye"), mask: pair.SenderMasks);
        var text = RawWebSocket.EncodeFrame(RawFrame.Text, "after the close"u8, mask: pair.SenderMasks);
        var ping = RawWebSocket.EncodeFrame(RawFrame.Ping, "after the close"u8, mask: pair.SenderMasks);
        await pair.SendAsync([.. close, .. text, .. ping]);

        Assert.Equal(close, (await pair.ReceiveAsync(TimeSpan.FromSeconds(5)))?.Wire);
        var answer = await pair.AnswerCloseAsync();
        Assert.Equal(answer, (await pair.SenderReceivesAsync(TimeSpan.FromSeconds(5)))?.Wire);
        var rest = await pair.ReceiverReadsUntilEndAsync(s_heartbeat.CloseTimeout + Heartbeat.Slack);
        Assert.True(rest.Frames.Count == 0 && rest.Ended, $"the receiver must get nothing after the Close; got {rest}");
        var toSender = await pair.SenderReadsUntilEndAsync(s_heartbeat.CloseTimeout + Heartbeat.Slack);
        Assert.True(toSender.Frames.Count == 0 && toSender.Ended, $"the sender must get nothing after the answer to its Close and its connection must end; got {toSender}");
        Assert.Empty(fixture.Logs.WithEventId(2006).Skip(errorsBefore));
        await neighbour.AssertUnaffectedAsync();
    }

    private static TheoryData<string, Sender> Both(string[] inputs)
    {
        var data = new TheoryData<string, Sender>();
        foreach (var input in inputs)
        {
            data.Add(input, Sender.Client);
            data.Add(input, Sender.Backend);
        }

        return data;
    }

    private static MetricCollector<long> Collector(RelayFixture fixture, string instrument) =>
        new(fixture.Proxy.Host.Proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), "ReaperProxy", instrument);

    private static void AssertProxyClose1002(RawFrame? frame, bool towardBackend, string who)
    {
        Assert.True(frame is { Opcode: RawFrame.Close }, $"{who} must get a Close; got {(frame is null ? "the end of the stream" : frame)}");
        Assert.Equal(1002, frame!.CloseCode);
        Assert.True(frame.Masked == towardBackend, $"{who}: frames toward the backend are masked, toward the client not; got masked={frame.Masked}");
    }

    // (frames forwarded before the bad one, the bad frame); mask is how the sender's direction masks.
    private static (byte[] Forwarded, byte[] Bad) ProtocolError(string input, bool mask) => input switch
    {
        "reserved data opcode 0x3" => ([], RawWebSocket.EncodeFrame(0x3, "reserved"u8, mask: mask)),
        "reserved control opcode 0xB" => ([], RawWebSocket.EncodeFrame(0xB, "reserved"u8, mask: mask)),
        "control frame over 125 bytes" => ([], RawWebSocket.EncodeFrame(RawFrame.Ping, new byte[126], mask: mask)),
        "fragmented control frame" => ([], RawWebSocket.EncodeFrame(RawFrame.Ping, "half"u8, fin: false, mask: mask)),
        "continuation with no message open" => ([], RawWebSocket.EncodeFrame(RawFrame.Continuation, "orphan"u8, mask: mask)),
        "new data message inside a fragmented one" => (
            RawWebSocket.EncodeFrame(RawFrame.Text, "first half"u8, fin: false, mask: mask),
            RawWebSocket.EncodeFrame(RawFrame.Text, "a new message"u8, mask: mask)),
        "64-bit length with the top bit set" => ([], Header(0x82, mask, lengthBytes: 8, length: 0x8000_0000_0000_0005)),
        "frame masked the wrong way for its direction" => ([], RawWebSocket.EncodeFrame(RawFrame.Text, "wrong mask"u8, mask: !mask)),
        "Close with a 1-byte payload" => ([], RawWebSocket.EncodeFrame(RawFrame.Close, [0x03], mask: mask)),
        "Close with code 1005" => ([], RawWebSocket.EncodeFrame(RawFrame.Close, RawWebSocket.ClosePayload(1005), mask: mask)),
        "Close with code 2999" => ([], RawWebSocket.EncodeFrame(RawFrame.Close, RawWebSocket.ClosePayload(2999), mask: mask)),
        "Close with a reason that is not UTF-8" => ([], RawWebSocket.EncodeFrame(RawFrame.Close, [0x03, 0xE8, 0xFF, 0xFE, 0x61], mask: mask)),
        _ => throw new ArgumentOutOfRangeException(nameof(input), input),
    };

    private static byte[] PassThrough(string input, bool mask) => input switch
    {
        "16-bit length for a 5-byte payload" => Frame(0x81, "hello"u8, mask, lengthBytes: 2),
        "64-bit length for a 5-byte payload" => Frame(0x82, "hello"u8, mask, lengthBytes: 8),
        "RSV bits without a negotiated extension" =>
        [
            .. RawWebSocket.EncodeFrame(RawFrame.Text, "rsv1"u8, mask: mask, rsv: 4),
            .. RawWebSocket.EncodeFrame(RawFrame.Binary, "rsv2"u8, mask: mask, rsv: 2),
            .. RawWebSocket.EncodeFrame(RawFrame.Text, "rsv3"u8, mask: mask, rsv: 1),
            .. RawWebSocket.EncodeFrame(RawFrame.Ping, "rsv1 ping"u8, mask: mask, rsv: 4),
        ],
        "pong larger than any ping" => RawWebSocket.EncodeFrame(RawFrame.Pong, RandomNumberGenerator.GetBytes(125), mask: mask),
        "unsolicited pong of the proxy's payload size" => RawWebSocket.EncodeFrame(RawFrame.Pong, RandomNumberGenerator.GetBytes(16), mask: mask),
        "text message that is not UTF-8" => RawWebSocket.EncodeFrame(RawFrame.Text, [0xFF, 0xFE, 0xC3], mask: mask),
        _ => throw new ArgumentOutOfRangeException(nameof(input), input),
    };

    // A frame whose length is written in the encoding asked for, not the shortest (RFC 6455 §5.2 asks for the shortest).
    private static byte[] Frame(byte b0, ReadOnlySpan<byte> payload, bool mask, int lengthBytes)
    {
        var header = Header(b0, mask, lengthBytes, (ulong)payload.Length);
        var frame = new byte[header.Length + payload.Length];
        header.CopyTo(frame, 0);
        for (var i = 0; i < payload.Length; i++)
        {
            frame[header.Length + i] = (byte)(payload[i] ^ (mask ? header[header.Length - 4 + (i & 3)] : 0));
        }

        return frame;
    }

    private static byte[] Header(byte b0, bool mask, int lengthBytes, ulong length)
    {
        var header = new byte[2 + lengthBytes + (mask ? 4 : 0)];
        header[0] = b0;
        header[1] = (byte)((mask ? 0x80 : 0) | (lengthBytes == 2 ? 126 : 127));
        if (lengthBytes == 2)
        {
            BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(2), (ushort)length);
        }
        else
        {
            BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(2), length);
        }

        if (mask)
        {
            RandomNumberGenerator.Fill(header.AsSpan(2 + lengthBytes));
        }

        return header;
    }
}
