using System.Buffers.Binary;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;
using Microsoft.AspNetCore.Connections.Features;
using ReaperProxy.Configuration;
using ReaperProxy.Framing;

namespace ReaperProxy.Relay;

/// <summary>
/// One proxied WebSocket under a heartbeat policy. It is the client-side stream YARP copies through:
/// what YARP <em>reads</em> from it is the client→backend direction (<c>RelayConnection.ClientToBackend.cs</c>),
/// what YARP <em>writes</em> to it is the backend→client direction (<c>RelayConnection.BackendToClient.cs</c>).
/// Both are parsed frame by frame, so the proxy can inject its pings at frame boundaries, remove the
/// pongs that answer them, and see closing handshakes. Each leg's state is a <see cref="LegState"/>;
/// liveness and reaping are in <c>RelayConnection.Liveness.cs</c>, the closing handshake in
/// <c>RelayConnection.Closing.cs</c>, both driven by the shared <see cref="HeartbeatScheduler"/>.
/// </summary>
internal sealed partial class RelayConnection : Stream, IValueTaskSource<bool>
{
    // The proxy's ping payload: the leg's 8-byte random tag, then the ping's 8-byte sequence number.
    // A Pong echoes it (RFC 6455 §5.5.3), so a pong names the leg and the ping it answers; its timing
    // comes from the proxy's own record of that ping, never from bytes a peer wrote.
    private const int PingPayloadLength = 16;

    // How many unanswered pings to a leg a late Pong may still answer.
    private const ulong MaxUnansweredPings = 16;

    private readonly HttpContext _context;
    private readonly TimeProvider _time;
    private readonly ReaperSettingsMonitor _settings;
    private readonly ILogger _logger;
    private readonly Metrics.ReaperMetrics? _metrics;
    private readonly string? _policyName;
    private readonly CancellationTokenSource _finishCts = new();
    private LegState _client = new();
    private LegState _backend = new();
    private ReaperSettings _policySource;
    private HeartbeatPolicy _policy;
    private Stream? _inner;
    private int _ended;

    public RelayConnection(
        long id,
        HttpContext context,
        string routeId,
        string clusterId,
        string? policyName,
        ReaperSettingsMonitor settings,
        TimeProvider time,
        ILogger logger,
        Metrics.ReaperMetrics? metrics = null,
        SocketSlot? backendSocket = null)
    {
        _metrics = metrics;
        Id = id;
        _context = context;
        RouteId = routeId;
        ClusterId = clusterId;
        _policyName = policyName;
        _settings = settings;
        _policySource = settings.Current;
        _policy = _policySource.PolicyForRoute(routeId, policyName);
        _time = time;
        _logger = logger;
        _backend.Socket = backendSocket;
        ClientAddress = ClientAddressOf(context);
        Protocol = HttpProtocol.IsHttp2(context.Request.Protocol) ? "h2" : "http/1.1";
        _onInnerReadCompleted = OnInnerReadCompleted;
        _waitCore.RunContinuationsAsynchronously = true;

        // RFC 6455 §5.1: frames from the client are masked, frames from the backend are not.
        _c2b = new FrameScanner(MaskRule.Masked);
        _b2c = new FrameScanner(MaskRule.Unmasked);
    }

    /// <summary>A process-unique id (the admin connection list shows it).</summary>
    public long Id { get; }

    public string RouteId { get; }

    public string ClusterId { get; }

    /// <summary>The destination YARP chose, known once the upgrade is accepted.</summary>
    public string? Destination { get; private set; }

    public string ClientAddress { get; }

    /// <summary>The client's address and port as logs and the admin API show it.</summary>
    public static string ClientAddressOf(HttpContext context) =>
        context.Connection.RemoteIpAddress is { } ip ? $"{ip}:{context.Connection.RemotePort}" : "unknown";

    /// <summary><c>http/1.1</c> or <c>h2</c>: how the client reached the proxy.</summary>
    public string Protocol { get; }

    /// <summary>When the upgrade was accepted (TimeProvider timestamp).</summary>
    public long OpenedAt { get; private set; }

    /// <summary>Whether the upgrade completed and the relay is running.</summary>
    public bool IsAttached => _inner is not null;

    /// <summary>The most bytes of a partial header or control frame the relay holds for one direction.</summary>
    /// <remarks>
    /// A control frame's length has no extended form (RFC 6455 §5.5: at most 125 bytes of payload), so the
    /// largest one on the wire is 2 + 4 (mask) + 125 = 131 bytes, and the largest header 14 bytes. The scanner
    /// holds only an incomplete one of those, and a complete one is acted on as its last byte arrives, so at
    /// most 130 bytes wait in a direction however the peer trickles them. The arrays they wait in are fixed
    /// (<see cref="FrameHeader.MaxControlFrame"/> bytes toward the backend, twice that toward the client,
    /// where a held unit is completed in place), created on first need and never grown.
    /// </remarks>
    public const int MaxHeldPerDirection = 2 + 4 + FrameHeader.MaxControlPayload - 1;

    /// <summary>Bytes of partial headers or control frames held now, both directions (at most 2 × <see cref="MaxHeldPerDirection"/>).</summary>
    public int HeldBytes => Volatile.Read(ref _c2bHeldCount) + Volatile.Read(ref _b2cHeldCount);

    /// <summary>The policy in force now (re-resolved at each tick after a reload).</summary>
    public HeartbeatPolicy Policy => _policy;

    /// <summary>Why the connection ended, once decided.</summary>
    public CloseReason Reason => _reason;

    /// <summary>Cancelled when the relay ends the connection itself; YARP's forwarder runs under it.</summary>
    public CancellationToken FinishToken => _finishCts.Token;

    /// <summary>Where the backend leg's socket is (or will be) known, if the proxy tracks it.</summary>
    public SocketSlot? BackendSocket => _backend.Socket;

    /// <summary>Takes over the client stream Kestrel handed out for the upgrade.</summary>
    public Stream Attach(Stream inner, string? destination)
    {
        _inner = inner;
        Destination = destination;
        var now = _time.GetTimestamp();
        OpenedAt = now;
        _client.LastHeard = now;
        _backend.LastHeard = now;
        _client.LastProgress = now;
        _backend.LastProgress = now;
        _lastData = now;

        // Kestrel's socket (HTTP/1.1 and HTTP/2 over TCP; absent for other transports and in-memory tests).
        if (_context.Features.Get<IConnectionSocketFeature>()?.Socket is { ProtocolType: ProtocolType.Tcp } socket)
        {
            _client.Socket = new SocketSlot(socket);
        }

        _metrics?.Opened(RouteId, ClusterId, Protocol);
        return this;
    }

    /// <summary>Called once the request pipeline returned: no more I/O, no more aborts.</summary>
    public void MarkEnded(CloseReason fallback)
    {
        lock (_gate)
        {
            _requestEnded = true;
            if (_reason == CloseReason.None)
            {
                _reason = fallback;
            }
        }

        // Exactly once per attached connection, whatever path ended it: active never drifts.
        if (_inner is not null && Interlocked.Exchange(ref _ended, 1) == 0)
        {
            _metrics?.Closed(RouteId, ClusterId, _reason.ToTag(), _time.GetElapsedTime(OpenedAt));
        }
    }

    private ref LegState Of(Leg leg) => ref leg == Leg.Client ? ref _client : ref _backend;

    /// <summary>Toward the backend frames are masked (the proxy is its client, RFC 6455 §5.3); toward the client not.</summary>
    private static bool Masks(Leg to) => to == Leg.Backend;

    // The ping for a leg: records it as that leg's outstanding ping. Called by the I/O path that writes it.
    private int WritePing(Leg to, Span<byte> destination, long now)
    {
        ulong seq;
        ulong tag;
        lock (_gate)
        {
            ref var leg = ref Of(to);
            seq = ++leg.LastPingSeq;
            tag = leg.PingTag;
            leg.UnansweredFrom = leg.UnansweredFrom == 0 ? seq
                : seq > MaxUnansweredPings ? Math.Max(leg.UnansweredFrom, seq - MaxUnansweredPings + 1)
                : leg.UnansweredFrom;
            leg.LastPingSentAt = now;
            leg.PingSentAt = now;
            leg.PingWanted = false;
        }

        Span<byte> payload = stackalloc byte[PingPayloadLength];
        BinaryPrimitives.WriteUInt64BigEndian(payload, tag);
        BinaryPrimitives.WriteUInt64BigEndian(payload[8..], seq);
        Log.PingSent(_logger, Id, to.ToTag());
        _metrics?.PingSent(RouteId, to.ToTag());
        return FrameWriter.WriteControl(destination, WebSocketOpcode.Ping, payload, Masks(to));
    }

    // The proxy's Close for a leg, as queued (1005: an empty Close, RFC 6455 §7.4.1 forbids sending 1005).
    private int WriteQueuedClose(Leg to, Span<byte> destination)
    {
        ushort code;
        string text;
        lock (_gate)
        {
            ref var leg = ref Of(to);
            leg.CloseQueued = false;
            code = leg.CloseCode;
            text = leg.CloseText;
        }

        return code == CloseCodes.NoStatus
            ? FrameWriter.WriteControl(destination, WebSocketOpcode.Close, [], Masks(to))
            : FrameWriter.WriteClose(destination, code, text, Masks(to));
    }

    // A control frame from a leg. Returns whether it goes on to the other leg.
    private bool OnControlFrom(Leg from, FrameHeader header, ReadOnlySpan<byte> frame, long now)
    {
        if (header.Opcode == WebSocketOpcode.Pong)
        {
            return !TryTakeOurPong(from, header, frame, now);
        }

        if (header.Opcode == WebSocketOpcode.Close)
        {
            Span<byte> payload = stackalloc byte[FrameHeader.MaxControlPayload];
            var length = header.CopyPayload(frame, payload);

            // An empty Close is told apart from one that carries 1005, which no endpoint may send.
            return OnCloseFrom(from, length >= 2 ? FrameWriter.ReadCloseCode(payload[..length]) : CloseCodes.Empty, now);
        }

        return true;
    }

    // ---- Stream plumbing (YARP uses only the async members) ----

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Flush() => _inner?.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => _inner?.FlushAsync(cancellationToken) ?? Task.CompletedTask;

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    // YARP passes the same token to every read (and to every write): one linked source per direction.
    private static CancellationToken LinkedToken(ref CancellationTokenSource? source, ref CancellationToken linkedTo, CancellationToken callerToken)
    {
        if (source is null || (callerToken != linkedTo && callerToken.CanBeCanceled))
        {
            var previous = source;
            linkedTo = callerToken;
            source = CancellationTokenSource.CreateLinkedTokenSource(callerToken);
            previous?.Dispose();
        }

        return source.Token;
    }

    /// <summary>
    /// Completes once, after <see cref="Stream.Dispose()"/>, the relay's read on Kestrel's stream has
    /// ended. The middleware awaits it before the request returns.
    /// </summary>
    /// <remarks>
    /// Pitfall: a read left pending on Kestrel's stream after the request breaks the next HTTP/2
    /// WebSocket on the same connection ("Reading is already in progress"). Dispose cancels the read;
    /// its completion runs on the thread pool, so Dispose must not block waiting for it: when a mass
    /// of connections ends at once (a drain, a network blip reaping thousands), threads blocked in
    /// Dispose would starve the very continuations they wait for.
    /// </remarks>
    public Task ReadsDone
    {
        get
        {
            if ((Volatile.Read(ref _innerWaitInFlight) == 0 && _inner is null) || Volatile.Read(ref _readsEnded) != 0)
            {
                return Task.CompletedTask;
            }

            // Made on demand: most requests end after their read has, and an idle connection then holds
            // no task for it. The releaser sets its flag before it reads this field, we the reverse
            // (both with full fences), so one of the two completes it.
            var source = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            source = Interlocked.CompareExchange(ref _readsDone, source, null) ?? source;
            if (Volatile.Read(ref _readsEnded) != 0)
            {
                source.TrySetResult();
            }

            return source.Task;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposeState, 1) == 0)
        {
            _readCts?.Cancel();
            _writeCts?.Dispose();
            _finishCts.Dispose();
            TryEndInnerRead();
        }

        base.Dispose(disposing);
    }
}
