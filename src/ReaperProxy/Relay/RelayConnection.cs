using System.Buffers.Binary;
using System.Threading.Tasks.Sources;
using ReaperProxy.Configuration;
using ReaperProxy.Framing;

namespace ReaperProxy.Relay;

/// <summary>
/// One proxied WebSocket under a heartbeat policy. It is the client-side stream YARP copies through:
/// what YARP <em>reads</em> from it is the client→backend direction (<c>RelayConnection.Receiver.cs</c>),
/// what YARP <em>writes</em> to it is the backend→client direction (<c>RelayConnection.Sender.cs</c>).
/// Both are parsed frame by frame, so the proxy can inject its pings at frame boundaries, remove the
/// pongs that answer them, and see closing handshakes. Liveness, reaping and close deadlines live in
/// <c>RelayConnection.KeepAlive.cs</c>, driven by the shared <see cref="HeartbeatScheduler"/>.
/// </summary>
internal sealed partial class RelayConnection : Stream, IValueTaskSource<bool>
{
    // The proxy's ping payload: an 8-byte per-connection tag, then the 8-byte send timestamp, so a
    // pong identifies itself and carries its own round-trip start (RFC 6455 §5.5.3: a Pong echoes
    // the Ping's application data).
    private const int PingPayloadLength = 16;

    private readonly HttpContext _context;
    private readonly TimeProvider _time;
    private readonly ReaperSettingsMonitor _settings;
    private readonly ILogger _logger;
    private readonly Metrics.ReaperMetrics? _metrics;
    private int _ended;
    private readonly ulong _tag;
    private readonly string? _policyName;
    private ReaperSettings _policySource;
    private HeartbeatPolicy _policy;
    private readonly CancellationTokenSource _finishCts = new();
    private Stream? _inner;

    public RelayConnection(
        long id,
        HttpContext context,
        string routeId,
        string clusterId,
        string? policyName,
        ReaperSettingsMonitor settings,
        TimeProvider time,
        ILogger logger,
        Metrics.ReaperMetrics? metrics = null)
    {
        _metrics = metrics;
        Id = id;
        _context = context;
        RouteId = routeId;
        ClusterId = clusterId;
        _policyName = policyName;
        _settings = settings;
        _policySource = settings.Current;
        _policy = ResolvePolicy(_policySource);
        _time = time;
        _logger = logger;
        _tag = (ulong)Random.Shared.NextInt64() | 1UL;
        ClientAddress = ClientAddressOf(context);
        Protocol = HttpProtocol.IsHttp2(context.Request.Protocol) ? "h2" : "http/1.1";
        _onInnerReadCompleted = OnInnerReadCompleted;
        _waitCore.RunContinuationsAsynchronously = true;
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

    /// <summary>The policy in force now (re-resolved at each tick after a reload).</summary>
    public HeartbeatPolicy Policy => _policy;

    /// <summary>Why the connection ended, once decided.</summary>
    public CloseReason Reason => _reason;

    /// <summary>Cancelled when the relay ends the connection itself; YARP's forwarder runs under it.</summary>
    public CancellationToken FinishToken => _finishCts.Token;

    /// <summary>Takes over the client stream Kestrel handed out for the upgrade.</summary>
    public Stream Attach(Stream inner, string? destination)
    {
        _inner = inner;
        Destination = destination;
        var now = _time.GetTimestamp();
        OpenedAt = now;
        _clientLastHeard = now;
        _backendLastHeard = now;
        _lastData = now;
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

    private HeartbeatPolicy ResolvePolicy(ReaperSettings settings) => settings.PolicyForRoute(RouteId, _policyName);

    private int WritePing(Span<byte> destination, bool mask)
    {
        Span<byte> payload = stackalloc byte[PingPayloadLength];
        BinaryPrimitives.WriteUInt64BigEndian(payload, _tag);
        BinaryPrimitives.WriteInt64BigEndian(payload[8..], _time.GetTimestamp());
        return FrameWriter.WriteControl(destination, WebSocketOpcode.Ping, payload, mask);
    }

    /// <summary>Whether a complete Pong frame answers one of this connection's pings; if so, when that ping left.</summary>
    private bool IsOurPong(FrameHeader header, ReadOnlySpan<byte> frame, out long sentAt)
    {
        sentAt = 0;
        if (header.Opcode != WebSocketOpcode.Pong || header.PayloadLength != PingPayloadLength)
        {
            return false;
        }

        Span<byte> payload = stackalloc byte[PingPayloadLength];
        header.CopyPayload(frame, payload);
        if (BinaryPrimitives.ReadUInt64BigEndian(payload) != _tag)
        {
            return false;
        }

        sentAt = BinaryPrimitives.ReadInt64BigEndian(payload[8..]);
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

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            // Pitfall: a read left pending on Kestrel's stream after the request breaks the next HTTP/2
            // WebSocket on the same connection ("Reading is already in progress"). Cancel ours and wait.
            _readCts?.Cancel();
            DrainInnerRead();
            _readCts?.Dispose();
            _writeCts?.Dispose();
            _finishCts.Dispose();
            _inner?.Dispose();
        }

        base.Dispose(disposing);
    }
}
