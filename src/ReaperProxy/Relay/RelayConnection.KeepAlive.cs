using System.Globalization;
using ReaperProxy.Configuration;

namespace ReaperProxy.Relay;

// Liveness, pings, closing handshakes and reaping. The shared scheduler calls OnTick; the I/O paths
// report what they see (bytes heard, pongs, Close frames). State changes that span both directions
// happen under _gate; the hot path only touches timestamps and flags.
internal sealed partial class RelayConnection
{
    // RFC 6455 §7.4.1: 1005 means "no status code"; it is never sent, an empty Close is sent instead.
    private const ushort CloseNoStatus = 1005;
    private const ushort CloseGoingAway = 1001;
    private const ushort CloseProtocolError = 1002;

    private readonly Lock _gate = new();

    private long _clientLastHeard;
    private long _backendLastHeard;
    private long _lastData;
    private long _clientPingDue;
    private long _backendPingDue;
    private long _clientPingSent;
    private long _backendPingSent;
    private long _writeStartedAt;
    private long _readReturnedAt;
    private long _clientRtt = -1;
    private long _backendRtt = -1;
    private bool _clientObserved;
    private bool _backendObserved;
    private bool _idleObserved;

    private volatile bool _pingToClientWanted;
    private volatile bool _pingToBackendWanted;
    private volatile bool _closeToClientPending;
    private volatile bool _closeToBackendPending;
    private ushort _closeToClientCode;
    private ushort _closeToBackendCode;
    private string _closeToClientText = string.Empty;
    private string _closeToBackendText = string.Empty;
    private bool _closeToBackendInFlight;
    private bool _closeSentToClient;
    private bool _closeSentToBackend;
    private bool _closeFromClient;
    private bool _closeFromBackend;
    private ushort _clientCloseCode;
    private ushort _backendCloseCode;
    private Leg? _firstCloser;
    private volatile bool _dropToClient;
    private volatile bool _dropToBackend;
    private volatile bool _c2bBroken;
    private volatile bool _b2cBroken;
    private volatile bool _passThrough;
    private bool _awaitClientClose;
    private bool _awaitBackendClose;
    private bool _terminating;
    private bool _finishAfterFlush;
    private long _closeDeadline;
    private long _finishDeadline;
    private volatile bool _finishRequested;
    private bool _requestEnded;
    private CloseReason _reason;
    private Leg? _deadLeg;

    private bool HasFrameForBackend => !_passThrough && (_closeToBackendPending || (_pingToBackendWanted && !_dropToBackend));

    private bool HasFrameForClient => !_passThrough && (_closeToClientPending || (_pingToClientWanted && !_dropToClient));

    /// <summary>Seconds since the last byte from a leg (for the admin connection list).</summary>
    public TimeSpan IdleFor(Leg leg, long now) =>
        _time.GetElapsedTime(leg == Leg.Client ? Volatile.Read(ref _clientLastHeard) : Volatile.Read(ref _backendLastHeard), now);

    /// <summary>The last measured ping round trip of a leg, if any.</summary>
    public TimeSpan? LastRtt(Leg leg)
    {
        var rtt = Volatile.Read(ref leg == Leg.Client ? ref _clientRtt : ref _backendRtt);
        return rtt < 0 ? null : _time.GetElapsedTime(0, rtt);
    }

    /// <summary><c>open</c>, <c>closing</c> (a closing handshake or a reap is under way) or <c>closed</c>.</summary>
    public string State => _requestEnded ? "closed" : _terminating || _closeDeadline != 0 || _finishRequested ? "closing" : "open";

    /// <summary>One heartbeat tick: pings, deadlines, reaping. Never blocks.</summary>
    public void OnTick(long now)
    {
        if (_requestEnded || _inner is null)
        {
            return;
        }

        var current = _settings.Current;
        if (!ReferenceEquals(current, _policySource))
        {
            // A reload: adopt the new durations and mode from this tick on.
            _policySource = current;
            _policy = ResolvePolicy(current);
        }

        var policy = _policy;
        if (_finishRequested)
        {
            if (now >= _finishDeadline)
            {
                AbortNow();
            }

            return;
        }

        if (policy.Mode == HeartbeatMode.Off || _passThrough)
        {
            return;
        }

        if (_closeDeadline != 0)
        {
            if (now >= _closeDeadline)
            {
                OnCloseDeadline(now);
            }
            else
            {
                FlushPendingCloses();
            }

            return;
        }

        if (policy.IdleTimeout is { } idle && now - Volatile.Read(ref _lastData) >= Ticks(idle))
        {
            if (policy.Mode == HeartbeatMode.Enforce)
            {
                Log.IdleTimeout(_logger, RouteId, ClusterId, Destination, ClientAddress, AgeSeconds(now));
                _metrics?.Reaped(RouteId, ClusterId, "both", "idle_timeout");
                Terminate(CloseReason.IdleTimeout, CloseGoingAway, "idle", deadLeg: null, now);
                return;
            }

            if (!_idleObserved)
            {
                _idleObserved = true;
                Log.IdleObserved(_logger, RouteId, ClusterId, Destination, ClientAddress, AgeSeconds(now));
            }
        }

        CheckLeg(Leg.Client, now, policy);
        CheckLeg(Leg.Backend, now, policy);
    }

    /// <summary>Ends the connection with Close 1001 because the proxy is shutting down.</summary>
    public void BeginShutdown() => Terminate(CloseReason.Shutdown, CloseGoingAway, "proxy shutting down", deadLeg: null, _time.GetTimestamp());

    // A leg is dead when (a) a ping actually went out to it and nothing at all came back within
    // PongTimeout, or (b) it stopped consuming: a write toward it made no progress for PingInterval +
    // PongTimeout (a frozen process, a link that went dark while data was flowing to it). A ping can
    // only leave at a frame boundary; while the stream toward a leg is inside a frame, its silence
    // proves nothing and it is not judged on it.
    private void CheckLeg(Leg leg, long now, HeartbeatPolicy policy)
    {
        ref var due = ref leg == Leg.Client ? ref _clientPingDue : ref _backendPingDue;
        ref var observed = ref leg == Leg.Client ? ref _clientObserved : ref _backendObserved;
        if (!policy.Pings(leg == Leg.Client ? HeartbeatLegs.Client : HeartbeatLegs.Backend))
        {
            due = 0;
            return;
        }

        var sent = Volatile.Read(ref leg == Leg.Client ? ref _clientPingSent : ref _backendPingSent);
        var pingWindow = Ticks(policy.PingInterval);
        var pongWindow = Ticks(policy.PongTimeout);

        // A leg whose bytes wait behind the other direction (YARP busy writing them) counts as heard:
        // a slow reader on one side must not make the other side look dead.
        var heard = leg == Leg.Client
            ? (_inRead ? Volatile.Read(ref _clientLastHeard) : now)
            : (_inWrite ? now : Volatile.Read(ref _backendLastHeard));

        // Stopped consuming: YARP has been stuck writing toward this leg.
        var stalled = leg == Leg.Client
            ? _inWrite && now - Volatile.Read(ref _writeStartedAt) >= pingWindow + pongWindow
            : !_inRead && !_clientEof && Volatile.Read(ref _readReturnedAt) is var returned && returned != 0 && now - returned >= pingWindow + pongWindow;

        if (due != 0 && heard >= (sent != 0 ? sent : due))
        {
            // It spoke since the ping was asked for (or answered it): alive.
            due = 0;
            observed = false;
            Volatile.Write(ref leg == Leg.Client ? ref _clientPingSent : ref _backendPingSent, 0);
            sent = 0;
        }

        var dead = stalled || (sent != 0 && now - sent >= pongWindow);
        if (!dead)
        {
            if (due == 0)
            {
                if (now - heard >= pingWindow)
                {
                    due = now;
                    RequestPing(leg);
                }
            }
            else if (sent == 0)
            {
                // Not sent yet (no frame boundary, or the writer was busy): ask again.
                RequestPing(leg);
            }

            return;
        }

        if (policy.Mode == HeartbeatMode.Enforce)
        {
            Log.Reaped(_logger, RouteId, ClusterId, Destination, ClientAddress, leg.ToTag(), "pong_timeout", AgeSeconds(now), RttMs(Leg.Client), RttMs(Leg.Backend));
            _metrics?.Reaped(RouteId, ClusterId, leg.ToTag(), "pong_timeout");
            Terminate(leg == Leg.Client ? CloseReason.ClientDead : CloseReason.BackendDead, CloseGoingAway,
                leg == Leg.Client ? "client unresponsive" : "backend unresponsive", leg, now);
            return;
        }

        if (!observed)
        {
            observed = true;
            Log.ZombieObserved(_logger, RouteId, ClusterId, Destination, ClientAddress, leg.ToTag(), "pong_timeout", AgeSeconds(now), RttMs(Leg.Client), RttMs(Leg.Backend));
            _metrics?.ZombieObserved(RouteId, ClusterId, leg.ToTag());
        }

        // Observe goes on pinging, as Enforce would have had to.
        due = 0;
        Volatile.Write(ref leg == Leg.Client ? ref _clientPingSent : ref _backendPingSent, 0);
    }

    private void RequestPing(Leg leg)
    {
        if (leg == Leg.Client)
        {
            _pingToClientWanted = true;
            _ = TrySendForClientAsync();
        }
        else
        {
            _pingToBackendWanted = true;
            WakeReader();
        }
    }

    private void OnPingSent(Leg leg)
    {
        Volatile.Write(ref leg == Leg.Client ? ref _clientPingSent : ref _backendPingSent, _time.GetTimestamp());
        Log.PingSent(_logger, Id, leg.ToTag());
        _metrics?.PingSent(RouteId, leg.ToTag());
    }

    private void RecordPong(Leg leg, long sentAt, long now)
    {
        if (sentAt > 0 && sentAt <= now)
        {
            Volatile.Write(ref leg == Leg.Client ? ref _clientRtt : ref _backendRtt, now - sentAt);
            _metrics?.PongRtt(RouteId, leg.ToTag(), _time.GetElapsedTime(sentAt, now));
        }
    }

    // A Close frame arrived from a leg. Returns whether it goes on to the other leg.
    private bool OnCloseFrom(Leg leg, ushort code, long now)
    {
        lock (_gate)
        {
            if (leg == Leg.Client)
            {
                if (_closeFromClient)
                {
                    return false;
                }

                _closeFromClient = true;
                _clientCloseCode = code;
                if (_awaitClientClose)
                {
                    // The answer to our own Close: it stops here.
                    _awaitClientClose = false;
                    CheckFinishLocked(now);
                    return false;
                }
            }
            else
            {
                if (_closeFromBackend)
                {
                    return false;
                }

                _closeFromBackend = true;
                _backendCloseCode = code;
                if (_awaitBackendClose)
                {
                    _awaitBackendClose = false;
                    CheckFinishLocked(now);
                    return false;
                }
            }

            if (_terminating)
            {
                // The other leg has been (or will be) told by the proxy itself.
                return false;
            }

            if (_firstCloser is null)
            {
                _firstCloser = leg;
                _reason = leg == Leg.Client ? CloseReason.ClientClose : CloseReason.BackendClose;
                _closeDeadline = now + Ticks(_policy.CloseTimeout);
            }

            if (leg == Leg.Client)
            {
                // Handed to YARP with this read; it has reached the backend when YARP reads again.
                _closeToBackendInFlight = true;
            }

            return true;
        }
    }

    // Called at the start of each read: YARP has written everything the previous read returned.
    private void OnBackendFrameDelivered()
    {
        if (_closeToBackendInFlight)
        {
            _closeToBackendInFlight = false;
            OnCloseForwarded(Leg.Backend);
        }
    }

    // A Close (the peer's or ours) has gone to a leg: nothing more may follow it (RFC 6455 §5.5.1).
    private void OnCloseForwarded(Leg to)
    {
        lock (_gate)
        {
            if (to == Leg.Client)
            {
                _closeSentToClient = true;
                _dropToClient = true;
            }
            else
            {
                _closeSentToBackend = true;
                _dropToBackend = true;
            }

            CheckFinishLocked(_time.GetTimestamp());
        }
    }

    // The client's stream ended (FIN) or failed (reset): YARP alone would leave the backend waiting
    // forever for a client that is gone. Tell the backend with Close 1001, then end.
    private void OnClientGone(CloseReason reason)
    {
        _clientEof = true;
        _c2bHeldCount = 0;
        var now = _time.GetTimestamp();
        bool vanished;
        lock (_gate)
        {
            vanished = !_closeFromClient && !_terminating && _policy.Mode == HeartbeatMode.Enforce;
        }

        if (vanished)
        {
            Log.ClientWentAway(_logger, ClientAddress, RouteId, ClusterId, Destination);
            Terminate(reason, CloseGoingAway, "client went away", Leg.Client, now);
        }
    }

    // Returns true when parsing stops and everything passes through (Observe mode).
    private bool OnProtocolError(Leg sender, Framing.FrameError error)
    {
        var direction = sender == Leg.Client ? "client->backend" : "backend->client";
        if (_policy.Mode != HeartbeatMode.Enforce)
        {
            Log.ProtocolErrorObserved(_logger, RouteId, ClusterId, direction, Framing.WebSocketOpcode.Describe(error));
            _passThrough = true;
            return true;
        }

        Log.ProtocolError(_logger, RouteId, ClusterId, direction, Framing.WebSocketOpcode.Describe(error), ClientAddress);
        if (sender == Leg.Client)
        {
            _c2bBroken = true;
        }
        else
        {
            _b2cBroken = true;
        }

        Terminate(CloseReason.ProtocolError, CloseProtocolError, "protocol error", deadLeg: null, _time.GetTimestamp());
        return false;
    }

    // The proxy ends the connection itself: Close to each live leg, wait for their answers up to
    // CloseTimeout, then end both connections.
    private void Terminate(CloseReason reason, ushort code, string text, Leg? deadLeg, long now)
    {
        lock (_gate)
        {
            if (_terminating || _finishRequested || _requestEnded)
            {
                return;
            }

            _terminating = true;
            _reason = reason;
            _deadLeg = deadLeg;
            _closeDeadline = now + Ticks(_policy.CloseTimeout);
            _pingToClientWanted = false;
            _pingToBackendWanted = false;

            if (deadLeg == Leg.Client)
            {
                _dropToClient = true;
                _writeCts?.Cancel();
            }
            else if (deadLeg == Leg.Backend)
            {
                _dropToBackend = true;
            }

            if (deadLeg != Leg.Client && !_closeSentToClient)
            {
                QueueClose(Leg.Client, code, text);
                _awaitClientClose = !_closeFromClient && !_c2bBroken;
            }

            if (deadLeg != Leg.Backend && !_closeSentToBackend && !_closeToBackendInFlight)
            {
                QueueClose(Leg.Backend, code, text);
                _awaitBackendClose = !_closeFromBackend && !_b2cBroken;
            }

            CheckFinishLocked(now);
        }

        FlushPendingCloses();
    }

    private void QueueClose(Leg to, ushort code, string text)
    {
        if (to == Leg.Client)
        {
            _closeToClientCode = code;
            _closeToClientText = text;
            _closeToClientPending = true;
        }
        else
        {
            _closeToBackendCode = code;
            _closeToBackendText = text;
            _closeToBackendPending = true;
        }
    }

    private void FlushPendingCloses()
    {
        if (_closeToClientPending)
        {
            // A dead backend stuck in the middle of a frame toward the client leaves no boundary for a Close.
            if (_deadLeg == Leg.Backend && !_inWrite && !_b2c.AtBoundary)
            {
                AbortNow();
                return;
            }

            _ = TrySendForClientAsync();
        }

        if (_closeToBackendPending)
        {
            if (_deadLeg == Leg.Client && !_c2b.AtBoundary)
            {
                AbortNow();
                return;
            }

            WakeReader();
        }
    }

    private void OnCloseDeadline(long now)
    {
        Leg? initiator = null;
        lock (_gate)
        {
            if (_terminating || _finishAfterFlush || _closeFromClient == _closeFromBackend)
            {
                // The proxy's own Close went unanswered, or both sides closed but the connections
                // stayed open: end them.
                if (!_terminating && _reason is CloseReason.None)
                {
                    _reason = CloseReason.CloseTimeout;
                }

                RequestFinishLocked(now);
                return;
            }

            // One side started the closing handshake and the other never answered: answer the
            // initiator ourselves, echoing its code, then end both connections.
            initiator = _closeFromClient ? Leg.Client : Leg.Backend;
            _reason = CloseReason.CloseTimeout;
            _finishAfterFlush = true;
            _finishDeadline = now + Math.Min(Ticks(_policy.CloseTimeout), Ticks(TimeSpan.FromSeconds(1)));
            _closeDeadline = _finishDeadline;
            var code = initiator == Leg.Client ? _clientCloseCode : _backendCloseCode;
            if (initiator == Leg.Client)
            {
                _dropToClient = false;
                QueueClose(Leg.Client, code, string.Empty);
            }
            else
            {
                _dropToBackend = false;
                QueueClose(Leg.Backend, code, string.Empty);
            }
        }

        Log.CloseTimeout(_logger, RouteId, ClusterId, Destination, ClientAddress, initiator.Value.ToTag(), Duration.Format(_policy.CloseTimeout));
        _metrics?.Reaped(RouteId, ClusterId, (initiator == Leg.Client ? Leg.Backend : Leg.Client).ToTag(), "close_timeout");
        FlushPendingCloses();
    }

    private void CheckFinishLocked(long now)
    {
        if (_finishAfterFlush)
        {
            if (!_closeToClientPending && !_closeToBackendPending && !_closeToBackendInFlight)
            {
                RequestFinishLocked(now);
            }

            return;
        }

        if (_terminating && !_closeToClientPending && !_closeToBackendPending && !_closeToBackendInFlight &&
            !_awaitClientClose && !_awaitBackendClose)
        {
            RequestFinishLocked(now);
        }
    }

    // Ends both connections. The token YARP's forwarder runs under is cancelled, so YARP stops both
    // copy loops (logged by YARP at Debug, as a cancellation), disposes the backend connection and
    // returns; the client connection then ends after what was written to it, our Close included, is
    // flushed. Should anything not honour the cancellation, the tick aborts after a grace period.
    private void RequestFinishLocked(long now)
    {
        if (_finishRequested || _requestEnded)
        {
            return;
        }

        _finishRequested = true;
        _finishDeadline = now + Ticks(TimeSpan.FromMilliseconds(500));
        if (_deadLeg == Leg.Client)
        {
            // Nothing to flush toward a dead client.
            _context.Abort();
            return;
        }

        // Cancellation callbacks run YARP's code; never under our lock.
        ThreadPool.UnsafeQueueUserWorkItem(static cts => Cancel(cts), _finishCts, preferLocal: false);

        static void Cancel(CancellationTokenSource cts)
        {
            try
            {
                cts.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // The request already ended.
            }
        }
    }

    private void AbortNow()
    {
        lock (_gate)
        {
            if (_requestEnded)
            {
                return;
            }

            _finishRequested = true;
            _context.Abort();
        }
    }

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    private double AgeSeconds(long now) => Math.Round(_time.GetElapsedTime(OpenedAt, now).TotalSeconds, 3);

    /// <summary>The leg's last pong RTT in milliseconds for the log lines, or "none" if it never answered a ping.</summary>
    private string RttMs(Leg leg) =>
        LastRtt(leg) is { } rtt ? Math.Round(rtt.TotalMilliseconds, 3).ToString(CultureInfo.InvariantCulture) : "none";
}
