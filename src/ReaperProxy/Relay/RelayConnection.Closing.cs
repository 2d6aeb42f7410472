using ReaperProxy.Configuration;
using ReaperProxy.Framing;

namespace ReaperProxy.Relay;

// The closing handshake (RFC 6455 §5.5.1, §7) and the proxy's own ends of a connection: reaps, idle
// timeouts, protocol errors, shutdown. Every state change that spans both legs happens under _gate;
// nothing under it awaits or calls into YARP.
//
// Bounds: once a closing handshake or a reap has started, its deadline holds through any reload (a
// route moved to Off included). Observe mode arms the same deadline but only records what Enforce
// would have done at it.
internal sealed partial class RelayConnection
{
    private readonly Lock _gate = new();

    private Leg? _firstCloser;
    private Leg? _deadLeg;
    private volatile bool _passThrough;
    private bool _terminating;
    private bool _finishAfterFlush;
    private long _closeDeadline;
    private bool _closeDeadlineEnforced;
    private long _finishDeadline;
    private volatile bool _finishRequested;
    private bool _requestEnded;
    private CloseReason _reason;
    private bool _cancelWriteAfterBackendClose;

    /// <summary><c>open</c>, <c>closing</c> (a closing handshake or a reap is under way) or <c>closed</c>.</summary>
    public string State => _requestEnded ? "closed" : _terminating || _closeDeadline != 0 || _finishRequested ? "closing" : "open";

    /// <summary>Ends both connections now, without a closing handshake.</summary>
    public void Abort() => AbortNow();

    /// <summary>Ends the connection with Close 1001 because the proxy is shutting down.</summary>
    public void BeginShutdown() => Terminate(CloseReason.Shutdown, CloseCodes.GoingAway, "proxy shutting down", deadLeg: null, _time.GetTimestamp());

    // Whether a frame of the proxy's own waits for the stream toward a leg to reach a frame boundary.
    private bool HasFrameFor(Leg to)
    {
        ref var leg = ref Of(to);
        return !_passThrough && !leg.TakesNothingMore && (leg.CloseQueued || (leg.PingWanted && !_terminating));
    }

    // Whether bytes from one leg to the other may no longer be forwarded: after the sender's Close,
    // after a Close went to the receiver, toward a reaped leg.
    private bool Blocked(Leg from) => Of(from).SendsNothingMore || Of(from.Other()).TakesNothingMore;

    // A Close frame arrived from a leg. Returns whether it goes on to the other leg.
    private bool OnCloseFrom(Leg from, ushort code, long now)
    {
        lock (_gate)
        {
            ref var sender = ref Of(from);
            ref var receiver = ref Of(from.Other());
            if (sender.CloseReceived)
            {
                return false;
            }

            sender.CloseReceived = true;
            sender.CloseReceivedCode = code;
            if (sender.AwaitingClose)
            {
                // The answer to the proxy's own Close: it stops here.
                sender.AwaitingClose = false;
                CheckFinishLocked(now);
                return false;
            }

            if (_terminating || receiver.TakesNothingMore)
            {
                // The other leg has been (or will be) told by the proxy itself.
                return false;
            }

            if (_firstCloser is null)
            {
                _firstCloser = from;
                _reason = from == Leg.Client ? CloseReason.ClientClose : CloseReason.BackendClose;
                if (_closeDeadline == 0 && _policy.Mode != HeartbeatMode.Off)
                {
                    _closeDeadline = now + Ticks(_policy.CloseTimeout);
                    _closeDeadlineEnforced = _policy.Mode == HeartbeatMode.Enforce;
                }
            }

            receiver.CloseInFlight = true;
            return true;
        }
    }

    // A Close (the peer's or the proxy's) has been written toward a leg: nothing more may follow it.
    private void OnCloseDelivered(Leg to)
    {
        lock (_gate)
        {
            ref var leg = ref Of(to);
            leg.CloseInFlight = false;
            leg.CloseSent = true;
            CheckFinishLocked(_time.GetTimestamp());
        }
    }

    // The client's stream ended (FIN) or failed (reset): YARP alone would leave the backend waiting
    // forever for a client that is gone. Tell the backend with Close 1001, then end.
    private void OnClientGone(CloseReason reason)
    {
        _clientEof = true;
        _c2bHeldCount = 0;
        bool vanished;
        lock (_gate)
        {
            vanished = !_client.CloseReceived && !_terminating && _policy.Mode == HeartbeatMode.Enforce;
        }

        if (vanished)
        {
            Log.ClientWentAway(_logger, ClientAddress, RouteId, ClusterId, Destination);
            Terminate(reason, CloseCodes.GoingAway, "client went away", Leg.Client, _time.GetTimestamp());
        }
    }

    // Returns true when parsing stops and everything passes through (Observe mode).
    private bool OnProtocolError(Leg sender, FrameError error)
    {
        var direction = sender == Leg.Client ? "client->backend" : "backend->client";
        if (_policy.Mode != HeartbeatMode.Enforce)
        {
            Log.ProtocolErrorObserved(_logger, RouteId, ClusterId, direction, WebSocketOpcode.Describe(error));
            _passThrough = true;
            return true;
        }

        Log.ProtocolError(_logger, RouteId, ClusterId, direction, WebSocketOpcode.Describe(error), ClientAddress);
        Of(sender).Broken = true;
        Terminate(CloseReason.ProtocolError, CloseCodes.ProtocolError, "protocol error", deadLeg: null, _time.GetTimestamp());
        return false;
    }

    // The proxy ends the connection itself: a Close to each live leg, their answers awaited up to
    // CloseTimeout, then both connections ended.
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
            _closeDeadlineEnforced = true;
            _client.PingWanted = false;
            _backend.PingWanted = false;

            if (deadLeg is { } dead)
            {
                Of(dead).Dead = true;

                // No closing handshake goes to a dead leg: when its connection ends, it is reset, so
                // nothing the peer will never take stays queued in the kernel (FIN-WAIT-1) for it. An
                // HTTP/2 client connection carries other streams, which go on.
                if (dead == Leg.Backend || Protocol == "http/1.1")
                {
                    Of(dead).Socket?.ResetOnClose();
                }

            }

            foreach (var to in (ReadOnlySpan<Leg>)[Leg.Client, Leg.Backend])
            {
                ref var leg = ref Of(to);
                if (to != deadLeg && !leg.CloseSent && !leg.CloseInFlight)
                {
                    QueueCloseLocked(ref leg, code, text);
                    leg.AwaitingClose = !leg.CloseReceived && !leg.Broken;
                }
            }

            if (deadLeg == Leg.Client)
            {
                // A write stuck toward a dead client is cancelled, but only once the backend has its Close:
                // Kestrel may end the client's connection when a write to it is cancelled, and YARP would
                // then end the backend's too, before the Close 1001 reached it (WriteFrameForBackend).
                if (_backend.CloseQueued)
                {
                    _cancelWriteAfterBackendClose = true;
                }
                else
                {
                    _writeCts?.Cancel();
                }
            }

            CheckFinishLocked(now);
        }

        FlushPendingCloses();
    }

    private static void QueueCloseLocked(ref LegState leg, ushort code, string text)
    {
        leg.CloseCode = code;
        leg.CloseText = text;
        leg.CloseQueued = true;
    }

    // Hands queued Closes to the I/O paths; a leg that cannot reach a frame boundary is aborted.
    private void FlushPendingCloses()
    {
        if (_client.CloseQueued)
        {
            // The stream toward the client is inside a frame that will never end (its sender is dead or
            // idle): no boundary for a Close will come.
            if (!_b2c.AtBoundary && Volatile.Read(ref _client.PendingSince) == 0 && !_writing && StalledMidFrame(Leg.Backend))
            {
                AbortNow();
                return;
            }

            _ = TrySendForClientAsync();
        }

        if (_backend.CloseQueued)
        {
            if (!_c2b.AtBoundary && StalledMidFrame(Leg.Client))
            {
                AbortNow();
                return;
            }

            WakeReader();
        }
    }

    // Whether the leg that sends toward the other stopped in the middle of a frame for good.
    private bool StalledMidFrame(Leg sender) => _deadLeg == sender || _reason == CloseReason.IdleTimeout;

    private void OnCloseDeadline(long now, HeartbeatPolicy policy)
    {
        var enforce = _closeDeadlineEnforced || policy.Mode == HeartbeatMode.Enforce;
        Leg initiator;
        lock (_gate)
        {
            if (_terminating || _finishAfterFlush)
            {
                // The proxy's own Close went unanswered (or its answer for a peer was sent): end both.
                RequestFinishLocked(now);
                return;
            }

            if (_client.CloseReceived == _backend.CloseReceived)
            {
                // Both sides closed but the connections stayed open.
                _closeDeadline = 0;
                if (enforce)
                {
                    _reason = _reason is CloseReason.None ? CloseReason.CloseTimeout : _reason;
                    RequestFinishLocked(now);
                }

                return;
            }

            initiator = _client.CloseReceived ? Leg.Client : Leg.Backend;
            if (enforce)
            {
                // One side started the closing handshake and the other never answered: answer the
                // initiator ourselves (with its own code where that may be sent), then end both.
                _reason = CloseReason.CloseTimeout;
                _finishAfterFlush = true;
                _finishDeadline = now + Math.Min(Ticks(policy.CloseTimeout), Ticks(TimeSpan.FromSeconds(1)));
                _closeDeadline = _finishDeadline;
                ref var leg = ref Of(initiator);
                QueueCloseLocked(ref leg, CloseCodes.Echo(leg.CloseReceivedCode), string.Empty);
            }
            else
            {
                _closeDeadline = 0;
            }
        }

        var silent = initiator.Other().ToTag();
        if (!enforce)
        {
            // Observe records what Enforce would have done and closes nothing (Off: not even that).
            if (policy.Mode == HeartbeatMode.Observe)
            {
                Log.CloseTimeoutObserved(_logger, RouteId, ClusterId, Destination, ClientAddress, initiator.ToTag(), Duration.Format(policy.CloseTimeout));
                _metrics?.ZombieObserved(RouteId, ClusterId, silent, "close_timeout");
            }

            return;
        }

        Log.CloseTimeout(_logger, RouteId, ClusterId, Destination, ClientAddress, initiator.ToTag(), Duration.Format(policy.CloseTimeout));
        _metrics?.Reaped(RouteId, ClusterId, silent, "close_timeout");
        FlushPendingCloses();
    }

    private void CheckFinishLocked(long now)
    {
        // Nothing of the proxy's own is still to be written (a leg that takes nothing more is owed nothing).
        var quiet = !(_client.CloseQueued && !_client.TakesNothingMore) && !(_backend.CloseQueued && !_backend.TakesNothingMore) && !_backend.CloseInFlight;
        if (_finishAfterFlush)
        {
            if (quiet)
            {
                RequestFinishLocked(now);
            }

            return;
        }

        if (_terminating && quiet && !_client.AwaitingClose && !_backend.AwaitingClose)
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
        ThreadPool.UnsafeQueueUserWorkItem(static cts => CancelQuietly(cts), _finishCts, preferLocal: false);
    }

    private static void CancelQuietly(CancellationTokenSource cts)
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
}
