using System.Diagnostics;
using System.Net.WebSockets;
using Microsoft.Extensions.Logging;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

// Liveness is progress, not the duration of one write: a leg toward which bytes are pending is alive as
// long as it keeps consuming them, and dead only when it consumed nothing for PingInterval + PongTimeout
// (+25% of the smaller). A ping queued behind data the peer is still slowly reading is not unanswered.
//
// The slow peers read through a 4 KiB socket receive buffer (8 KiB once Linux doubles it), so their TCP
// window stays small. The proxy's own kernel send buffer toward them is autotuned up to tcp_wmem's maximum
// (4 MB here; `ss -tmi` showed 2.7 MB not yet sent toward a 10 KiB/s client): a write into it returns long
// before the peer read those bytes, and a write blocked on a full buffer is only woken once about a third
// of it has drained. So how long one write takes, or whether a write returned, says little about whether
// the peer is consuming; the tests judge by what the peer actually read.
//
// The tests are split into classes so that xunit runs them concurrently (each reads for ~14 s); with
// xunit's default maxParallelThreads (the core count) two classes run at a time on a 2-core machine.

/// <summary>The policy, the proxy and the backend the slow-peer tests share.</summary>
public sealed class SlowPeerFixture : IAsyncDisposable
{
    /// <summary>PingInterval 2 s, PongTimeout 2 s, CloseTimeout 2 s: a dead leg is reaped within 4.5 s.</summary>
    public static readonly Heartbeat Policy = new(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2));

    /// <summary>How long a live slow peer is watched: well over twice the deadline.</summary>
    public static readonly TimeSpan WatchFor = TimeSpan.FromSeconds(14);

    /// <summary>How long the idle harness checks watch: the proxy pings an idle leg every PingInterval or so.</summary>
    public static readonly TimeSpan IdleWatch = TimeSpan.FromSeconds(7);

    /// <summary>The policy's mode. The harness is checked by running the live-peer tests with "Off" (plain YARP), where they must pass.</summary>
    public const string Mode = "Enforce";

    private readonly TestBackend? _backend;
    private readonly BulkSenderProbe? _bulk;
    private readonly RawTcpBackend? _raw;

    private SlowPeerFixture(TestProxy proxy, RecordingLoggerProvider logs, TestBackend? backend, BulkSenderProbe? bulk, RawTcpBackend? raw)
    {
        Proxy = proxy;
        Logs = logs;
        _backend = backend;
        _bulk = bulk;
        _raw = raw;
    }

    public TestProxy Proxy { get; }

    public RecordingLoggerProvider Logs { get; }

    /// <summary>The Kestrel backend's <c>/bulk</c> sender, when started with <see cref="WithBulkSenderAsync"/>.</summary>
    public BulkSenderProbe Bulk => _bulk ?? throw new InvalidOperationException("started without the bulk sender");

    /// <summary>The raw slow-reading backend, when started with <see cref="WithRawBackendAsync"/>.</summary>
    public RawTcpBackend Raw => _raw ?? throw new InvalidOperationException("started without the raw backend");

    /// <summary>A proxy in front of a Kestrel backend that maps <see cref="BulkSenderProbe"/>; <paramref name="heartbeat"/> null keeps the built-in default policy.</summary>
    public static async Task<SlowPeerFixture> WithBulkSenderAsync(ITestOutputHelper output, Heartbeat? heartbeat)
    {
        var bulk = new BulkSenderProbe();
        var backend = await TestBackend.StartAsync(new TestBackendOptions { Map = bulk.Map, Output = output });
        try
        {
            var (proxy, logs) = await StartProxyAsync(output, backend.BaseUri, heartbeat);
            return new SlowPeerFixture(proxy, logs, backend, bulk, null);
        }
        catch
        {
            await backend.DisposeAsync();
            throw;
        }
    }

    /// <summary>A proxy in front of a <see cref="RawTcpBackend"/>.</summary>
    public static async Task<SlowPeerFixture> WithRawBackendAsync(ITestOutputHelper output, RawTcpBackendOptions options, Heartbeat? heartbeat)
    {
        var raw = RawTcpBackend.Start(options);
        try
        {
            var (proxy, logs) = await StartProxyAsync(output, raw.BaseUri, heartbeat);
            return new SlowPeerFixture(proxy, logs, null, null, raw);
        }
        catch
        {
            await raw.DisposeAsync();
            throw;
        }
    }

    public Uri Ws(string path) => Proxy.WebSocketUri(path);

    /// <summary>What a task completed with, for failure messages (never blocks).</summary>
    public static string Describe<T>(Task<T> task) =>
        task.IsCompletedSuccessfully ? task.GetAwaiter().GetResult()?.ToString() ?? "null" : task.Status.ToString();

    /// <summary>The reap log lines (event 2001), for failure messages.</summary>
    public string Reaps() => string.Join(" | ", Logs.WithEventId(2001).Select(e => e.Message));

    public async ValueTask DisposeAsync()
    {
        await Proxy.DisposeAsync();
        if (_backend is not null)
        {
            await _backend.DisposeAsync();
        }

        if (_raw is not null)
        {
            await _raw.DisposeAsync();
        }
    }

    private static async Task<(TestProxy, RecordingLoggerProvider)> StartProxyAsync(ITestOutputHelper output, Uri backend, Heartbeat? heartbeat)
    {
        var config = ProxyConfig.CatchAll(backend).Set("Reaper:Heartbeat:Mode", Mode);
        if (heartbeat is not null)
        {
            config
                .Set("Reaper:Heartbeat:Legs", "Both")
                .Set("Reaper:Heartbeat:PingInterval", Heartbeat.Format(heartbeat.PingInterval))
                .Set("Reaper:Heartbeat:PongTimeout", Heartbeat.Format(heartbeat.PongTimeout))
                .Set("Reaper:Heartbeat:CloseTimeout", Heartbeat.Format(heartbeat.CloseTimeout));
        }

        var logs = new RecordingLoggerProvider();
        var proxy = await TestProxy.StartAsync(config, new TestProxyOptions
        {
            Output = output,
            Configure = builder => builder.Logging.AddProvider(logs),
        });
        return (proxy, logs);
    }
}

/// <summary>A live client reading a download slowly is alive as long as it keeps consuming.</summary>
public sealed class SlowPeerDownloadTests(ITestOutputHelper output)
{
    [Fact]
    public Task A_live_client_reading_one_4_MB_message_at_10_KiB_per_second_is_not_reaped() =>
        SlowDownloadLivesAsync(count: 1, size: 4 * 1024 * 1024);

    [Fact]
    public Task A_live_client_reading_64_messages_of_64_KiB_at_10_KiB_per_second_answers_the_pings_queued_behind_them_and_is_not_reaped() =>
        SlowDownloadLivesAsync(count: 64, size: 64 * 1024);

    /// <summary>Harness check (passes on any relay that pings): the paced client answers pings, so an idle one lives.</summary>
    [Fact]
    public async Task An_idle_paced_client_answers_the_proxys_pings_and_is_not_reaped()
    {
        await using var fixture = await SlowPeerFixture.WithBulkSenderAsync(output, SlowPeerFixture.Policy);
        await using var client = await PacedRawClient.ConnectAsync(fixture.Ws("/bulk?count=0&size=0"));
        await fixture.Bulk.Accepted.WaitAsync(TimeSpan.FromSeconds(5));

        var stop = await client.ReadAsync(Pace.TenKiBPerSecond, SlowPeerFixture.IdleWatch);
        Assert.True(stop == PacedStop.DurationElapsed, $"the idle client's connection ended: {stop}; reaps: {fixture.Reaps()}");
        Assert.True(client.Reader.PingsAnswered >= 2, $"the client must have answered the proxy's pings; it answered {client.Reader.PingsAnswered}");
        Assert.Empty(fixture.Logs.WithEventId(2001));
        Assert.False(fixture.Bulk.Outcome.IsCompleted, "the backend's WebSocket must still be open");
    }

    private async Task SlowDownloadLivesAsync(int count, int size)
    {
        var pace = Pace.TenKiBPerSecond;
        await using var fixture = await SlowPeerFixture.WithBulkSenderAsync(output, SlowPeerFixture.Policy);
        await using var client = await PacedRawClient.ConnectAsync(fixture.Ws($"/bulk?count={count}&size={size}"));
        await fixture.Bulk.Accepted.WaitAsync(TimeSpan.FromSeconds(5));

        var stop = await client.ReadAsync(pace, SlowPeerFixture.WatchFor);
        var reader = client.Reader;
        output.WriteLine($"client read {reader.BytesConsumed} bytes ({reader.MessagesCompleted} whole messages) at {pace}, answered {reader.PingsAnswered} pings; stopped: {stop}");

        Assert.True(stop == PacedStop.DurationElapsed,
            $"the live slow client's connection ended after {reader.BytesConsumed} bytes: {stop}" +
            (reader.Close is { } close ? $" (Close {close.CloseCode} '{close.CloseReason}')" : string.Empty) + $"; reaps: {fixture.Reaps()}");
        Assert.Null(reader.Close);
        Assert.False(reader.EndOfStream, "the client's connection must not end");
        Assert.False(fixture.Bulk.Outcome.IsCompleted, $"the backend's WebSocket must still be open: {SlowPeerFixture.Describe(fixture.Bulk.Outcome)}");
        Assert.Empty(fixture.Logs.WithEventId(2001));

        // The harness really read at the pace (not faster, not much slower), and in the many-messages case
        // it crossed frame boundaries, where the proxy may place its pings.
        var expected = pace.BytesPerSecond * SlowPeerFixture.WatchFor.TotalSeconds;
        Assert.InRange(reader.BytesConsumed, (long)(0.6 * expected), (long)(1.1 * expected) + pace.ChunkBytes);
        if (count > 1)
        {
            Assert.True(reader.MessagesCompleted >= 1, "the client must have read past a frame boundary");
        }
    }
}

/// <summary>A live backend reading an upload slowly is alive as long as it keeps consuming.</summary>
public sealed class SlowPeerUploadTests(ITestOutputHelper output)
{
    [Fact]
    public Task A_live_backend_reading_one_4_MB_upload_at_10_KiB_per_second_is_not_reaped() =>
        SlowUploadLivesAsync(count: 1, size: 4 * 1024 * 1024);

    [Fact]
    public Task A_live_backend_reading_64_uploaded_messages_of_64_KiB_at_10_KiB_per_second_is_not_reaped() =>
        SlowUploadLivesAsync(count: 64, size: 64 * 1024);

    /// <summary>Harness check (passes on any relay that pings): the raw backend answers pings, so an idle one lives.</summary>
    [Fact]
    public async Task An_idle_raw_backend_answers_the_proxys_pings_and_is_not_reaped()
    {
        await using var fixture = await SlowPeerFixture.WithRawBackendAsync(output, new RawTcpBackendOptions(), SlowPeerFixture.Policy);
        await using var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/upload"));
        var backend = await fixture.Raw.Accepted.WaitAsync(TimeSpan.FromSeconds(5));
        var closed = client.Socket.ReceiveCloseAsync(SlowPeerFixture.IdleWatch + TimeSpan.FromSeconds(30));

        await Task.WhenAny(closed, fixture.Raw.Ended, Task.Delay(SlowPeerFixture.IdleWatch));
        Assert.Null(fixture.Raw.Fault);
        Assert.False(closed.IsCompleted, $"the client must not be closed; it got {SlowPeerFixture.Describe(closed)}; reaps: {fixture.Reaps()}");
        Assert.False(fixture.Raw.Ended.IsCompleted, $"the backend's connection must still be open, it ended: {SlowPeerFixture.Describe(fixture.Raw.Ended)}");
        Assert.True(backend.PingsAnswered >= 2, $"the backend must have answered the proxy's pings; it answered {backend.PingsAnswered}");
        Assert.Empty(fixture.Logs.WithEventId(2001));
    }

    private async Task SlowUploadLivesAsync(int count, int size)
    {
        var pace = Pace.TenKiBPerSecond;
        await using var fixture = await SlowPeerFixture.WithRawBackendAsync(output, new RawTcpBackendOptions { Pace = pace }, SlowPeerFixture.Policy);
        await using var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/upload"));
        var backend = await fixture.Raw.Accepted.WaitAsync(TimeSpan.FromSeconds(5));

        // A pending receive makes the ClientWebSocket answer pings: a live client.
        var closed = client.Socket.ReceiveCloseAsync(SlowPeerFixture.WatchFor + TimeSpan.FromSeconds(30));
        using var sendCancel = new CancellationTokenSource();
        var payload = BulkSenderProbe.Payload(size, seed: 3);
        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < count; i++)
            {
                await client.Socket.SendAsync(payload, WebSocketMessageType.Binary, endOfMessage: true, sendCancel.Token);
            }
        });

        // Watch, sampling what the backend consumed once more than a deadline before the end.
        var lateWindow = SlowPeerFixture.Policy.Deadline;
        await Task.WhenAny(closed, fixture.Raw.Ended, Task.Delay(SlowPeerFixture.WatchFor - lateWindow));
        var bytesBeforeLateWindow = backend.BytesConsumed;
        await Task.WhenAny(closed, fixture.Raw.Ended, Task.Delay(lateWindow));
        var bytes = backend.BytesConsumed;
        output.WriteLine($"backend read {bytes} bytes ({backend.MessagesCompleted} whole messages) at {pace}, {bytes - bytesBeforeLateWindow} in the last {lateWindow.TotalSeconds} s, answered {backend.PingsAnswered} pings");

        Assert.Null(fixture.Raw.Fault);
        Assert.False(closed.IsCompleted,
            $"the client must not be closed; it got {SlowPeerFixture.Describe(closed)}; backend saw {(backend.Close is { } c ? $"Close {c.CloseCode} '{c.CloseReason}'" : "no Close")}; reaps: {fixture.Reaps()}");
        Assert.False(fixture.Raw.Ended.IsCompleted, $"the backend's connection must still be open, it ended: {SlowPeerFixture.Describe(fixture.Raw.Ended)}");
        Assert.Null(backend.Close);
        Assert.Empty(fixture.Logs.WithEventId(2001));

        // It has been receiving all along, the last deadline's worth included.
        var expected = pace.BytesPerSecond * SlowPeerFixture.WatchFor.TotalSeconds;
        Assert.InRange(bytes, (long)(0.6 * expected), (long)(1.1 * expected) + pace.ChunkBytes);
        Assert.True(bytes - bytesBeforeLateWindow >= (long)(0.5 * pace.BytesPerSecond * lateWindow.TotalSeconds),
            $"the backend must still be receiving: {bytes - bytesBeforeLateWindow} bytes in the last {lateWindow.TotalSeconds} s");
        Assert.False(sending.IsCompleted && sending.IsFaulted, $"the client's send failed: {sending.Exception?.GetBaseException().Message}");

        await sendCancel.CancelAsync();
        await client.DisposeAsync();
        await Task.WhenAny(sending, Task.Delay(TimeSpan.FromSeconds(2)));
        _ = sending.Exception;
    }
}

/// <summary>A peer that stops consuming mid-transfer is reaped within the deadline, counted from when it stopped.</summary>
public sealed class SlowPeerFrozenTests(ITestOutputHelper output)
{
    private static readonly Heartbeat s_policy = SlowPeerFixture.Policy;

    /// <summary>Before it freezes the peer reads at 160 KiB/s: 256 KiB take 1.6 s, no single write toward it is slow.</summary>
    private static readonly Pace s_beforeFreezing = new(8 * 1024, TimeSpan.FromMilliseconds(50));

    private const int ReadBeforeFreezing = 256 * 1024;

    /// <summary>The kernel buffers between the proxy and the frozen peer have to fill before no write can progress.</summary>
    private static readonly TimeSpan s_buffersFill = TimeSpan.FromSeconds(2);

    /// <summary>Progress is seen in lumps (a blocked writer is woken once a third of its buffer is free).</summary>
    private static readonly TimeSpan s_earlyTolerance = TimeSpan.FromMilliseconds(500);

    [Fact]
    public async Task A_client_that_stops_reading_mid_download_is_reaped_and_the_backend_gets_close_1001()
    {
        await using var fixture = await SlowPeerFixture.WithBulkSenderAsync(output, s_policy);
        await using var client = await PacedRawClient.ConnectAsync(fixture.Ws($"/bulk?count=1&size={16 * 1024 * 1024}"));
        await fixture.Bulk.Accepted.WaitAsync(TimeSpan.FromSeconds(5));
        var outcome = fixture.Bulk.Outcome.ContinueWith(t => (Outcome: t.Result, At: Stopwatch.GetTimestamp()), TaskScheduler.Default);

        var stop = await client.ReadAsync(s_beforeFreezing, TimeSpan.FromSeconds(20), stopAfterBytes: ReadBeforeFreezing);
        Assert.True(stop == PacedStop.ByteLimit, $"the client must read {ReadBeforeFreezing} bytes before freezing; it stopped with {stop} after {client.Reader.BytesConsumed}; reaps: {fixture.Reaps()}");

        // Frozen from here: it never reads again, never closes.
        var stoppedAt = client.Reader.LastProgressTimestamp;
        var bound = s_policy.Deadline + Heartbeat.Slack + s_buffersFill;
        var finished = await Task.WhenAny(outcome, Task.Delay(bound + TimeSpan.FromSeconds(1)));
        Assert.True(finished == outcome, $"the backend must get a Close within {bound.TotalSeconds} s of the client freezing; reaps: {fixture.Reaps()}");
        var (backendOutcome, at) = await outcome;
        var elapsed = Stopwatch.GetElapsedTime(stoppedAt, at);
        output.WriteLine($"backend outcome {backendOutcome} {elapsed.TotalSeconds:0.00} s after the client stopped reading");

        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, backendOutcome.CloseStatus);
        Assert.Equal("client unresponsive", backendOutcome.CloseDescription);
        AssertReapedInTime(elapsed, bound, "client");
        var reaped = Assert.Single(fixture.Logs.WithEventId(2001));
        Assert.Contains("client leg dead", reaped.Message);

        // The dead client's connection is ended too.
        Assert.True(await client.Reader.DrainUntilEndAsync(s_policy.CloseTimeout + Heartbeat.Slack), "the client's connection must end");
    }

    [Fact]
    public async Task A_backend_that_stops_reading_mid_upload_is_reaped_and_the_client_gets_close_1001()
    {
        await using var fixture = await SlowPeerFixture.WithRawBackendAsync(output,
            new RawTcpBackendOptions { Pace = s_beforeFreezing, StopReadingAfterBytes = ReadBeforeFreezing }, s_policy);
        await using var client = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/upload"));
        await fixture.Raw.Accepted.WaitAsync(TimeSpan.FromSeconds(5));
        var closed = Task.Run(async () =>
        {
            var close = await client.Socket.ReceiveCloseAsync(TimeSpan.FromSeconds(60));
            return (close.Status, close.Description, At: Stopwatch.GetTimestamp());
        });
        using var sendCancel = new CancellationTokenSource();
        var payload = BulkSenderProbe.Payload(16 * 1024 * 1024, seed: 5);
        var sending = client.Socket.SendAsync(payload, WebSocketMessageType.Binary, endOfMessage: true, sendCancel.Token);

        var stoppedAt = await fixture.Raw.StoppedReading.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.False(closed.IsCompleted, $"the client was closed before the backend froze: {SlowPeerFixture.Describe(closed)}; reaps: {fixture.Reaps()}");
        var bound = s_policy.Deadline + Heartbeat.Slack + s_buffersFill;
        var finished = await Task.WhenAny(closed, Task.Delay(bound + TimeSpan.FromSeconds(1)));
        Assert.True(finished == closed, $"the client must get a Close within {bound.TotalSeconds} s of the backend freezing; reaps: {fixture.Reaps()}");
        var (status, description, at) = await closed;
        var elapsed = Stopwatch.GetElapsedTime(stoppedAt, at);
        output.WriteLine($"client got {status} '{description}' {elapsed.TotalSeconds:0.00} s after the backend stopped reading");

        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, status);
        Assert.Equal("backend unresponsive", description);
        AssertReapedInTime(elapsed, bound, "backend");
        var reaped = Assert.Single(fixture.Logs.WithEventId(2001));
        Assert.Contains("backend leg dead", reaped.Message);
        Assert.Null(fixture.Raw.Fault);

        await sendCancel.CancelAsync();
        await client.DisposeAsync();
        await Task.WhenAny(sending, Task.Delay(TimeSpan.FromSeconds(2)));
        _ = sending.Exception;
    }

    // Dead only once it consumed nothing for PingInterval + PongTimeout: not earlier than that after its
    // last read (less a tolerance for how lumpy progress looks), and within the deadline (plus slack and the
    // time for the buffers toward it to fill).
    private static void AssertReapedInTime(TimeSpan elapsed, TimeSpan bound, string leg)
    {
        var earliest = s_policy.PingInterval + s_policy.PongTimeout - s_earlyTolerance;
        Assert.True(elapsed >= earliest,
            $"the {leg} was reaped {elapsed.TotalSeconds:0.00} s after its last read, earlier than {earliest.TotalSeconds:0.00} s: it had still been consuming within PingInterval + PongTimeout");
        Assert.True(elapsed <= bound, $"the {leg} was reaped {elapsed.TotalSeconds:0.00} s after its last read, later than {bound.TotalSeconds:0.00} s");
    }
}

/// <summary>Under the default policy a message much slower to deliver than the deadline arrives whole.</summary>
public sealed class SlowPeerDefaultPolicyTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Under_the_default_policy_a_1_MB_message_over_a_20_KiB_per_second_link_arrives_whole()
    {
        const int Size = 1024 * 1024;
        var pace = Pace.TwentyKiBPerSecond;
        await using var fixture = await SlowPeerFixture.WithBulkSenderAsync(output, heartbeat: null);
        await using var client = await PacedRawClient.ConnectAsync(fixture.Ws($"/bulk?count=1&Size={Size}&seed=7"), keepPayload: true);
        await fixture.Bulk.Accepted.WaitAsync(TimeSpan.FromSeconds(5));

        // About 51 s at 20 KiB/s, twice the default policy's 27.5 s deadline.
        var clock = Stopwatch.StartNew();
        var stop = await client.ReadAsync(pace, TimeSpan.FromSeconds(90), stopAfterMessages: 1);
        output.WriteLine($"client read {client.Reader.DataBytes} payload bytes in {clock.Elapsed.TotalSeconds:0.0} s at {pace}, answered {client.Reader.PingsAnswered} pings; stopped: {stop}");

        Assert.True(stop == PacedStop.Messages,
            $"the message must arrive whole; the client stopped with {stop} after {client.Reader.DataBytes} of {Size} bytes" +
            (client.Reader.Close is { } close ? $" (Close {close.CloseCode} '{close.CloseReason}')" : string.Empty) + $"; reaps: {fixture.Reaps()}");
        Assert.Equal(BulkSenderProbe.Payload(Size, seed: 7), client.Reader.Payload());
        Assert.Null(client.Reader.Close);
        Assert.Empty(fixture.Logs.WithEventId(2001));
        Assert.False(fixture.Bulk.Outcome.IsCompleted, "the backend's WebSocket must still be open");
    }
}
