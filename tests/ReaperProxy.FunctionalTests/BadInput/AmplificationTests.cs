using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using ReaperProxy.FunctionalTests.Infrastructure;
using ReaperProxy.FunctionalTests.Relay;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.BadInput;

/// <summary>
/// docs/reliability.md §5, Amplification: hostile raw clients (ping flood, pong flood, tiny frames, pongs of
/// the proxy's payload shape) against raw backends. What the proxy emits of its own on each leg (its pings,
/// Closes; it never generates pongs) is measured per byte of hostile input, and bounded: at most one ping
/// per leg per PingInterval whatever the client does, and a client's pong never answers the backend's ping.
/// </summary>
public sealed class AmplificationTests(ITestOutputHelper output)
{
    private static readonly TimeSpan s_flood = TimeSpan.FromSeconds(1);

    // The proxy's ping payload is 16 bytes; the hostile client's pings and pongs in the floods are 4.
    private const int ProxyPingPayload = 16;

    public enum Flood
    {
        Pings,
        Pongs,
        TinyFrames,
        PongsOfTheProxysShape,
    }

    [Fact]
    public async Task A_hostile_client_cannot_make_the_proxy_send_more_than_one_ping_per_leg_per_PingInterval()
    {
        // A long PongTimeout: the healthy neighbour (a ClientWebSocket) answers the proxy's pings only when
        // it next receives, between the floods.
        var heartbeat = new Heartbeat(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(600));
        await using var fixture = await RelayFixture.StartAsync(output, heartbeat);
        await using var neighbour = await HealthyNeighbour.OpenAsync(fixture.Proxy);
        output.WriteLine($"PingInterval {Heartbeat.Format(heartbeat.PingInterval)}, each flood {s_flood.TotalSeconds} s");
        output.WriteLine("| flood | hostile bytes in | frames | proxy bytes to client (pings) | proxy bytes to backend (pings) | factor |");
        output.WriteLine("|---|---|---|---|---|---|");
        foreach (var flood in Enum.GetValues<Flood>())
        {
            var m = await MeasureAsync(fixture, flood);
            var factor = (double)(m.ToClientBytes + m.ToBackendBytes) / m.HostileBytes;
            output.WriteLine($"| {flood} | {m.HostileBytes:N0} | {m.HostileFrames:N0} | {m.ToClientBytes} ({m.ToClientPings}) | {m.ToBackendBytes} ({m.ToBackendPings}) | {factor:E1} |");

            // Every hostile byte reached the backend unchanged and in order; nothing of the client's was removed.
            Assert.True(m.ForwardedIntact, $"{flood}: the backend must get the client's bytes exactly");

            // The client leg is busy: it is not pinged (one may slip in if the flood stalls on a loaded machine).
            var perLeg = (int)Math.Ceiling(m.Elapsed / heartbeat.PingInterval) + 1;
            Assert.True(m.ToClientPings <= perLeg, $"{flood}: {m.ToClientPings} pings to the client in {m.Elapsed}, at most {perLeg}");

            // The backend leg is quiet: one ping per PingInterval at most, whatever the client sends.
            Assert.True(m.ToBackendPings <= perLeg, $"{flood}: {m.ToBackendPings} pings to the backend in {m.Elapsed}, at most {perLeg}");
            Assert.True(m.ToBackendPings >= 1, $"{flood}: the quiet backend leg must have been pinged (the harness check)");
            Assert.True(factor < 0.01, $"{flood}: the proxy's own bytes were {factor:P2} of the hostile input");
            await neighbour.AssertUnaffectedAsync();
        }
    }

    [Fact]
    public async Task A_clients_pongs_even_with_the_payload_of_the_backends_ping_do_not_keep_a_dead_backend_alive()
    {
        var heartbeat = new Heartbeat(TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(600));
        await using var fixture = await RelayFixture.StartAsync(output, heartbeat, legs: "Backend");
        await using var neighbour = await HealthyNeighbour.OpenAsync(fixture.Proxy);
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/raw"));
        var backendStream = await fixture.Probe.NextRawStreamAsync(TimeSpan.FromSeconds(5));
        var backend = new RawFrameReader(backendStream);
        var clock = Stopwatch.StartNew();

        // The backend never answers. The client sends Pongs carrying exactly the payload of each ping the
        // proxy sent the backend (as if it could see them), which also keeps its own leg busy.
        var forwardedPongs = 0;
        RawFrame? frame;
        for (var i = 0; i < 1000 && (frame = await ReadOrEndAsync(backend, heartbeat.Deadline + Heartbeat.Slack)) is not null; i++)
        {
            if (frame.Opcode == RawFrame.Ping && frame.Payload.Length == ProxyPingPayload)
            {
                await client.SendFrameAsync(RawFrame.Pong, frame.Payload);
            }
            else if (frame.Opcode == RawFrame.Pong)
            {
                forwardedPongs++;
            }
        }

        // Reaped: the dead backend's connection just ends; the client gets Close 1001.
        Assert.True(clock.Elapsed < heartbeat.Deadline + Heartbeat.Slack, $"reaped after {clock.Elapsed}, deadline {heartbeat.Deadline}");
        var toClient = await client.ReceiveSkippingPingsAsync(TimeSpan.FromSeconds(5));
        Assert.True(toClient is { Opcode: RawFrame.Close, CloseCode: 1001 }, $"the client must get Close 1001; got {toClient}");
        Assert.Equal("backend unresponsive", toClient!.CloseReason);
        Assert.True(forwardedPongs >= 1, "the client's pongs are its own: they go on to the backend, they are not taken as answers");
        var reaped = Assert.Single(fixture.Logs.WithEventId(2001));
        Assert.Contains("backend leg dead (pong_timeout)", reaped.Message);
        await neighbour.AssertUnaffectedAsync();
    }

    [Fact]
    public async Task A_control_frame_flood_does_not_keep_a_connection_past_its_IdleTimeout()
    {
        var heartbeat = new Heartbeat(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(600));
        var idle = TimeSpan.FromSeconds(1);
        await using var fixture = await RelayFixture.StartAsync(output, heartbeat, configure: c => c.Set("Reaper:Heartbeat:IdleTimeout", "1s"));
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/raw"));
        var backend = new RawFrameReader(await fixture.Probe.NextRawStreamAsync(TimeSpan.FromSeconds(5)));
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();
        var flood = Task.Run(async () =>
        {
            var ping = RawWebSocket.EncodeFrame(RawFrame.Ping, "busy"u8);
            var pong = RawWebSocket.EncodeFrame(RawFrame.Pong, "busy"u8);
            for (var i = 0; i < 100_000 && !stop.IsCancellationRequested; i++)
            {
                try
                {
                    await client.SendRawAsync(i % 2 == 0 ? ping : pong);
                    await Task.Delay(5, CancellationToken.None);
                }
                catch (IOException)
                {
                    return;
                }
            }
        });

        RawFrame? frame;
        while ((frame = await ReadOrEndAsync(backend, idle + Heartbeat.Slack + Heartbeat.Slack)) is { Opcode: not RawFrame.Close })
        {
            // The client's pings and pongs, forwarded.
        }

        await stop.CancelAsync();
        await flood;
        Assert.True(frame is { Opcode: RawFrame.Close, CloseCode: 1001 }, $"the backend must get Close 1001 'idle'; got {frame}");
        Assert.Equal("idle", frame!.CloseReason);
        Assert.True(clock.Elapsed >= idle - TimeSpan.FromMilliseconds(50) && clock.Elapsed < idle + Heartbeat.Slack, $"closed after {clock.Elapsed}, IdleTimeout {idle}");
    }

    private sealed record Measurement(long HostileBytes, long HostileFrames, long ToClientBytes, int ToClientPings, long ToBackendBytes, int ToBackendPings, bool ForwardedIntact, TimeSpan Elapsed);

    private static async Task<Measurement> MeasureAsync(RelayFixture fixture, Flood flood)
    {
        await using var client = await RawWebSocket.ConnectAsync(fixture.Ws("/raw"));
        var backendStream = await fixture.Probe.NextRawStreamAsync(TimeSpan.FromSeconds(5));
        var backend = new RawFrameReader(backendStream);
        var sent = new MemoryStream();
        using var done = new CancellationTokenSource();

        // The client's side: everything that reaches it is the proxy's own (the backend sends only pongs
        // to the proxy's pings, which the proxy removes).
        var toClient = Task.Run(async () =>
        {
            long bytes = 0;
            var pings = 0;
            while (!done.IsCancellationRequested)
            {
                RawFrame? f;
                try
                {
                    f = await client.ReceiveFrameAsync(TimeSpan.FromMilliseconds(100));
                }
                catch (TimeoutException)
                {
                    continue;
                }

                if (f is null)
                {
                    break;
                }

                bytes += f.Wire.Length;
                pings += f.Opcode == RawFrame.Ping ? 1 : 0;
            }

            return (bytes, pings);
        });

        // The backend answers the proxy's pings (it is alive and quiet) and keeps everything else.
        var forwarded = new MemoryStream();
        var toBackend = Task.Run(async () =>
        {
            long bytes = 0;
            var pings = 0;
            while (!done.IsCancellationRequested || forwarded.Length < sent.Length)
            {
                RawFrame? f;
                try
                {
                    f = await backend.ReceiveFrameAsync(TimeSpan.FromMilliseconds(100));
                }
                catch (TimeoutException)
                {
                    if (done.IsCancellationRequested)
                    {
                        break;
                    }

                    continue;
                }

                if (f is null)
                {
                    break;
                }

                if (f.Opcode == RawFrame.Ping && f.Payload.Length == ProxyPingPayload)
                {
                    bytes += f.Wire.Length;
                    pings++;
                    await backendStream.WriteRawAsync(RawWebSocket.EncodeFrame(RawFrame.Pong, f.Payload, mask: false));
                }
                else
                {
                    forwarded.Write(f.Wire);
                }
            }

            return (bytes, pings);
        });

        var tag = RandomNumberGenerator.GetBytes(8);
        long frames = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < s_flood && frames < 2_000_000)
        {
            var batch = new MemoryStream();
            for (var i = 0; i < 200; i++, frames++)
            {
                batch.Write(flood switch
                {
                    Flood.Pings => RawWebSocket.EncodeFrame(RawFrame.Ping, "ping"u8),
                    Flood.Pongs => RawWebSocket.EncodeFrame(RawFrame.Pong, "pong"u8),
                    Flood.TinyFrames => RawWebSocket.EncodeFrame(RawFrame.Binary, []),
                    _ => RawWebSocket.EncodeFrame(RawFrame.Pong, [.. tag, .. BigEndian((ulong)frames + 1)]),
                });
            }

            var bytes = batch.ToArray();
            sent.Write(bytes);
            await client.SendRawAsync(bytes);
            await Task.Yield();
        }

        var elapsed = clock.Elapsed;
        await Eventually.UntilAsync(() => Volatile.Read(ref frames) > 0 && forwarded.Length >= sent.Length, "the backend to get the whole flood", TimeSpan.FromSeconds(30));
        await done.CancelAsync();
        var (clientBytes, clientPings) = await toClient;
        var (backendBytes, backendPings) = await toBackend;
        return new Measurement(sent.Length, frames, clientBytes, clientPings, backendBytes, backendPings,
            forwarded.ToArray().AsSpan().SequenceEqual(sent.ToArray()), elapsed);
    }

    private static byte[] BigEndian(ulong value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        return bytes;
    }

    private static async Task<RawFrame?> ReadOrEndAsync(RawFrameReader reader, TimeSpan timeout)
    {
        try
        {
            return await reader.ReceiveFrameAsync(timeout);
        }
        catch (Exception ex) when (ex is ObjectDisposedException or IOException)
        {
            return null;
        }
    }
}
