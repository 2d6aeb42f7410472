namespace ReaperProxy.Relay;

/// <summary>
/// What the relay knows about one leg (the peer on one side of a proxied WebSocket): when it was last
/// heard, whether it still consumes what is sent to it, the ping the proxy has out to it, and where its
/// closing handshake stands. <see cref="RelayConnection"/> keeps one per leg and reaches it with
/// <c>ref LegState Of(Leg)</c>, so every rule is written once for both legs (compare runtime's
/// <c>ManagedWebSocket.KeepAlivePingState</c> and Kestrel's <c>TimeoutControl</c>).
/// </summary>
/// <remarks>
/// Timestamps are <see cref="TimeProvider"/> ticks; 0 means "none". The I/O paths write the liveness
/// timestamps with <see cref="Volatile"/>; everything else changes under the connection's gate.
/// </remarks>
internal struct LegState
{
    // ---- Liveness ----

    /// <summary>When the last byte from this leg arrived.</summary>
    public long LastHeard;

    /// <summary>When this leg was last seen consuming what the proxy sent it (see <see cref="Socket"/>).</summary>
    public long LastProgress;

    /// <summary>
    /// When the HTTP/2 connections this leg's stream shares were last seen consuming. Weaker than
    /// <see cref="LastProgress"/>: the proxy's own pings to the other streams move those counters too, so
    /// it only keeps a leg with a write under way alive (<c>no_progress</c>), never answers a ping.
    /// </summary>
    public long LastSharedProgress;

    /// <summary>Since when bytes toward this leg are handed to a write that has not completed (0: none).</summary>
    public long PendingSince;

    /// <summary>
    /// The leg's TCP socket, when the proxy can read the kernel's view of it (see <see cref="TcpProgress"/>).
    /// Then progress is <c>tcpi_bytes_acked</c> moving: the peer's TCP stack took bytes, which it only
    /// does while its application reads. Without it, progress is a completed write toward the leg.
    /// </summary>
    public SocketSlot? Socket;

    /// <summary><c>tcpi_bytes_acked</c> at the last sample.</summary>
    public ulong AckedBytes;

    /// <summary>Whether <see cref="AckedBytes"/> holds a sample.</summary>
    public bool AckedSampled;

    /// <summary>Random per leg: the first half of every ping payload to it, so a pong names the leg it answers.</summary>
    public ulong PingTag;

    /// <summary>Sequence number of the last ping sent to this leg.</summary>
    public ulong LastPingSeq;

    /// <summary>
    /// The oldest ping to this leg no Pong has answered yet (0: none). Pongs for any ping from here to
    /// <see cref="LastPingSeq"/> are the proxy's (§5.5.3 lets a peer answer late, or only the latest).
    /// </summary>
    public ulong UnansweredFrom;

    /// <summary>When the ping <see cref="LastPingSeq"/> left, by the proxy's own clock: the start of its round trip.</summary>
    public long LastPingSentAt;

    /// <summary>When the ping the leg is being judged on left (0: none, or the leg has spoken since).</summary>
    public long PingSentAt;

    /// <summary>When a ping was asked for and not yet sent (0: none).</summary>
    public long PingDue;

    /// <summary>The I/O path should send a ping at the next frame boundary.</summary>
    public volatile bool PingWanted;

    /// <summary>The last measured round trip, in ticks (-1: never).</summary>
    public long Rtt;

    /// <summary>Observe mode already counted this leg dead; cleared once it lives again.</summary>
    public bool Observed;

    // ---- Closing ----

    /// <summary>This leg sent a Close: nothing it sends after it is forwarded (RFC 6455 §5.5.1).</summary>
    public volatile bool CloseReceived;

    /// <summary>The status code of the Close this leg sent (1005: none).</summary>
    public ushort CloseReceivedCode;

    /// <summary>A Close (forwarded or the proxy's own) went to this leg: nothing may follow it.</summary>
    public volatile bool CloseSent;

    /// <summary>A Close the peer sent is on its way to this leg and not yet written (toward the backend: handed to YARP).</summary>
    public bool CloseInFlight;

    /// <summary>A Close of the proxy's own waits for the next frame boundary toward this leg.</summary>
    public volatile bool CloseQueued;

    /// <summary>The code of the queued Close (1005: an empty Close).</summary>
    public ushort CloseCode;

    /// <summary>The reason of the queued Close.</summary>
    public string CloseText;

    /// <summary>The proxy sent this leg its own Close and waits for the answer.</summary>
    public bool AwaitingClose;

    /// <summary>The leg was reaped: nothing more goes to it.</summary>
    public volatile bool Dead;

    /// <summary>The stream from this leg broke RFC 6455; nothing more from it is parsed or forwarded.</summary>
    public volatile bool Broken;

    public LegState()
    {
        PingTag = (ulong)Random.Shared.NextInt64() | 1UL;
        Rtt = -1;
        CloseText = string.Empty;
    }

    /// <summary>Whether bytes from this leg may no longer be forwarded.</summary>
    public readonly bool SendsNothingMore => CloseReceived || Broken;

    /// <summary>Whether nothing more may be forwarded to this leg.</summary>
    public readonly bool TakesNothingMore => CloseSent || Dead;

    /// <summary>The leg is alive again: its ping was answered, or it spoke since the ping left.</summary>
    public void PingAnswered()
    {
        PingSentAt = 0;
        PingDue = 0;
        Observed = false;
    }
}
