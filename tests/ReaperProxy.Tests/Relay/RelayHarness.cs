using System.Buffers.Binary;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using ReaperProxy.Configuration;
using ReaperProxy.Framing;
using ReaperProxy.Relay;
using ReaperProxy.Tests.Framing;

namespace ReaperProxy.Tests.Relay;

/// <summary>
/// One <see cref="RelayConnection"/> attached to a <see cref="TestClientStream"/>, on a fake clock.
/// The test plays three parts: the client (<see cref="Client"/>), the backend (what YARP writes into
/// the relay with <see cref="FromBackendAsync(byte[])"/> and what it reads out with <see cref="ToBackendAsync()"/>),
/// and the shared heartbeat (<see cref="AdvanceAndTick"/>).
/// </summary>
internal sealed class RelayHarness : IAsyncDisposable
{
    public static readonly TimeSpan PingInterval = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan PongTimeout = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(3);

    /// <summary>The proxy's ping toward the backend on the wire: 2-byte header, 4-byte mask, 16-byte payload.</summary>
    public const int MaskedPingLength = 22;

    // Any await on the relay is bounded, so a relay that never answers fails the test instead of hanging it.
    private static readonly TimeSpan s_guard = TimeSpan.FromSeconds(10);

    private readonly byte[] _readBuffer;
    private readonly ReaperSettingsMonitor _settings;

    private RelayHarness(string mode, string legs, Random? segmenter, int readBufferSize, ReaperProxy.Metrics.ReaperMetrics? metrics, string? idleTimeout)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Reaper:Heartbeat:Mode"] = mode,
            ["Reaper:Heartbeat:Legs"] = legs,
            ["Reaper:Heartbeat:PingInterval"] = "10s",
            ["Reaper:Heartbeat:PongTimeout"] = "5s",
            ["Reaper:Heartbeat:CloseTimeout"] = "3s",
            ["Reaper:Heartbeat:IdleTimeout"] = idleTimeout,
        }).Build();
        _settings = new ReaperSettingsMonitor(configuration);

        // The monitor falls back to the defaults on invalid settings; make sure ours were taken.
        var policy = _settings.Current.DefaultPolicy;
        if (policy.Mode.ToString() != mode || policy.Legs.ToString() != legs || policy.PingInterval != PingInterval)
        {
            throw new InvalidOperationException($"test settings not applied: {policy.Describe()}");
        }

        Context = new DefaultHttpContext();
        Context.Features.Set<IHttpRequestLifetimeFeature>(Lifetime);
        Client = new TestClientStream(segmenter);
        Relay = new RelayConnection(1, Context, "route", "cluster", policyName: null, _settings, Time, Logger, metrics);
        Relay.Attach(Client, "http://backend/");
        _readBuffer = new byte[readBufferSize];
    }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public FakeLogger Logger { get; } = new();

    public RecordingLifetime Lifetime { get; } = new();

    public DefaultHttpContext Context { get; }

    public TestClientStream Client { get; }

    public RelayConnection Relay { get; }

    /// <param name="mode">Enforce, Observe or Off.</param>
    /// <param name="legs">Client, Backend or Both.</param>
    /// <param name="segmenter">Chops the client's bytes into random read sizes.</param>
    /// <param name="readBufferSize">YARP's StreamCopier uses 64 KiB.</param>
    /// <param name="metrics">Instruments to record into (the metrics tests), or none.</param>
    /// <param name="idleTimeout">Reaper:Heartbeat:IdleTimeout, or none.</param>
    public static RelayHarness Create(string mode = "Enforce", string legs = "Both", Random? segmenter = null, int readBufferSize = 64 * 1024,
        ReaperProxy.Metrics.ReaperMetrics? metrics = null, string? idleTimeout = null) =>
        new(mode, legs, segmenter, readBufferSize, metrics, idleTimeout);

    /// <summary>Moves the fake clock and runs one heartbeat tick at the new time.</summary>
    public void AdvanceAndTick(TimeSpan by)
    {
        Time.Advance(by);
        Relay.OnTick(Time.GetTimestamp());
    }

    /// <summary>
    /// One turn of YARP's client→backend copy loop: a zero-byte read (no buffer held while idle), then a
    /// read into the 64 KiB buffer. Returns what YARP would write to the backend.
    /// </summary>
    public async Task<byte[]> ToBackendAsync()
    {
        var zero = await Relay.ReadAsync(Memory<byte>.Empty).AsTask().WaitAsync(s_guard);
        if (zero != 0)
        {
            throw new InvalidOperationException($"a zero-byte read returned {zero}");
        }

        var read = await Relay.ReadAsync(_readBuffer).AsTask().WaitAsync(s_guard);
        return _readBuffer[..read];
    }

    /// <summary>
    /// Leaves a read pending and ignores it, as YARP's client loop always has one. The relay pings the
    /// client only while a read is pending: when YARP is not reading, the client's bytes may be waiting
    /// behind a slow backend, and the client counts as heard.
    /// </summary>
    public void KeepReadPending() => _ = ToBackendAsync();

    /// <summary>Turns the copy loop until at least <paramref name="count"/> bytes went to the backend.</summary>
    public async Task<byte[]> ToBackendAsync(int count)
    {
        var collected = new List<byte>();
        while (collected.Count < count)
        {
            var chunk = await ToBackendAsync();
            if (chunk.Length == 0)
            {
                throw new InvalidOperationException($"end of stream after {collected.Count} of {count} bytes");
            }

            collected.AddRange(chunk);
        }

        return [.. collected];
    }

    /// <summary>Runs YARP's client→backend copy loop in the background, collecting what it reads.</summary>
    public BackendReader StartBackendReader() => new(Relay);

    /// <summary>YARP's backend→client copy loop writes what the backend sent.</summary>
    public Task FromBackendAsync(ReadOnlySpan<byte> bytes) => FromBackendAsync(bytes.ToArray());

    public Task FromBackendAsync(byte[] bytes) => Relay.WriteAsync(bytes).AsTask().WaitAsync(s_guard);

    /// <summary>Bounds an await on a pending relay call.</summary>
    public static Task<T> Guard<T>(Task<T> task) => task.WaitAsync(s_guard);

    /// <summary>Bounds a wait on the relay (a relay that never answers fails the test instead of hanging it).</summary>
    public static Task Guard(Task task) => task.WaitAsync(s_guard);

    /// <summary>The proxy's ping payload: 8-byte connection tag, then the 8-byte send timestamp.</summary>
    /// <summary>The proxy's ping payload: the leg's random tag, then the ping's sequence number on that leg.</summary>
    public static (ulong Tag, ulong Sequence) ReadPingPayload(byte[] payload)
    {
        Assert.Equal(16, payload.Length);
        return (BinaryPrimitives.ReadUInt64BigEndian(payload), BinaryPrimitives.ReadUInt64BigEndian(payload.AsSpan(8)));
    }

    /// <summary>The single Ping in what the client received (asserting it is one of the proxy's, unmasked).</summary>
    public WireFrame SinglePingToClient()
    {
        var ping = Assert.Single(ReferenceFrameReader.ReadAll(Client.Received), f => f.Opcode == WebSocketOpcode.Ping);
        Assert.Null(ping.MaskKey);
        return ping;
    }

    public IReadOnlyList<FakeLogRecord> LogsWithId(int eventId) =>
        Logger.Collector.GetSnapshot().Where(r => r.Id.Id == eventId).ToList();

    public async ValueTask DisposeAsync()
    {
        // As the middleware does once YARP is done: no more ticks, then the stream goes.
        Relay.MarkEnded(CloseReason.None);
        await Relay.DisposeAsync();
        _settings.Dispose();
    }

    /// <summary>YARP's client→backend loop on its own task: zero-byte read, 64 KiB read, repeat.</summary>
    internal sealed class BackendReader
    {
        private readonly List<byte> _bytes = [];
        private readonly SemaphoreSlim _grew = new(0);
        private readonly Task _loop;

        public BackendReader(RelayConnection relay) => _loop = Task.Run(() => RunAsync(relay));

        /// <summary>Waits until what was read satisfies <paramref name="done"/>; returns it.</summary>
        public async Task<byte[]> WaitUntilAsync(Func<byte[], bool> done)
        {
            while (true)
            {
                byte[] snapshot;
                lock (_bytes)
                {
                    snapshot = [.. _bytes];
                }

                if (done(snapshot))
                {
                    return snapshot;
                }

                if (_loop.IsCompleted)
                {
                    await _loop;
                    throw new InvalidOperationException($"the read loop ended after {snapshot.Length} bytes");
                }

                if (!await _grew.WaitAsync(s_guard))
                {
                    throw new TimeoutException($"nothing more was read after {snapshot.Length} bytes");
                }
            }
        }

        private async Task RunAsync(RelayConnection relay)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    _ = await relay.ReadAsync(Memory<byte>.Empty);
                    var read = await relay.ReadAsync(buffer);
                    if (read == 0)
                    {
                        return;
                    }

                    lock (_bytes)
                    {
                        _bytes.AddRange(buffer.AsSpan(0, read));
                    }

                    _grew.Release();
                }
            }
            finally
            {
                _grew.Release();
            }
        }
    }

    /// <summary>Records <see cref="HttpContext.Abort"/>: for an upgraded request it ends both TCP connections.</summary>
    internal sealed class RecordingLifetime : IHttpRequestLifetimeFeature
    {
        private readonly CancellationTokenSource _aborted = new();

        public CancellationToken RequestAborted { get => _aborted.Token; set => throw new NotSupportedException(); }

        public bool Aborted => _aborted.IsCancellationRequested;

        public void Abort() => _aborted.Cancel();
    }
}
