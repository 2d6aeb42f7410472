using System.Buffers.Binary;
using System.Globalization;
using ReaperProxy.Configuration;
using ReaperProxy.Framing;

namespace ReaperProxy.Relay;

// Liveness: pings, progress, the verdict on each leg, idle timeout. The shared scheduler calls OnTick;
// the I/O paths only stamp timestamps (heard, pending, progress) and hand over pongs.
//
// A leg is dead when, and only when, one of these holds (README "The reaping deadline"):
//  - no_progress: bytes toward it have waited in a write for PingInterval + PongTimeout while it
//    consumed nothing (a frozen process, a link gone dark mid-transfer). While such a write is under
//    way this is the only judgement: a ping behind it cannot be answered before the peer reads it.
//  - pong_timeout: no write toward it is under way, a ping went out to it, nothing at all came back
//    since, and for PongTimeout it has consumed nothing either. A ping queued (in the kernel) behind
//    data the peer is still reading, slowly, is not unanswered yet: the clock runs from the later of
//    the ping and the leg's last progress.
// "Consumed" is the kernel's acknowledged-bytes counter where the proxy can read it (TcpProgress),
// else the completion of a write toward the leg. Slowness is never death: a write toward a slow
// reader may last minutes as long as the reader keeps taking bytes.
internal sealed partial class RelayConnection
{
    private long _lastData;
    private bool _idleObserved;

    /// <summary>How long since the last byte from a leg (for the admin connection list).</summary>
    public TimeSpan IdleFor(Leg leg, long now) => _time.GetElapsedTime(Volatile.Read(ref Of(leg).LastHeard), now);

    /// <summary>The last measured ping round trip of a leg, if any.</summary>
    public TimeSpan? LastRtt(Leg leg)
    {
        var rtt = Volatile.Read(ref Of(leg).Rtt);
        return rtt < 0 ? null : _time.GetElapsedTime(0, rtt);
    }

    /// <summary>
    /// How the relay sees a leg consume: <c>kernel</c> (its socket's acknowledged-bytes counter),
    /// <c>shared</c> (the counters of the HTTP/2 connections its stream shares) or <c>writes</c>
    /// (completed writes toward it: coarser, see README "The reaping deadline").
    /// </summary>
    public string ProgressSource(Leg leg) => Of(leg).Socket?.Source ?? "writes";

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
            // A reload: adopt the new durations and mode from this tick on. Deadlines already armed
            // (a closing handshake, a reap) keep the bound they were armed with, whatever the new mode.
            _policySource = current;
            _policy = current.PolicyForRoute(RouteId, _policyName);
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

        if (_closeDeadline != 0)
        {
            if (now >= _closeDeadline)
            {
                OnCloseDeadline(now, policy);
            }
            else
            {
                FlushPendingCloses();
            }

            return;
        }

        if (policy.Mode == HeartbeatMode.Off || _passThrough || _client.CloseReceived || _backend.CloseReceived)
        {
            return;
        }

        // Data waiting in a write toward either leg is data under way, not idleness (a slow reader of a
        // long frame is the liveness rules' to judge): the idle clock restarts once the write completes.
        if (Volatile.Read(ref _client.PendingSince) != 0 || Volatile.Read(ref _backend.PendingSince) != 0)
        {
            Volatile.Write(ref _lastData, now);
        }

        if (policy.IdleTimeout is { } idle && now - Volatile.Read(ref _lastData) >= Ticks(idle))
        {
            if (policy.Mode == HeartbeatMode.Enforce)
            {
                Log.IdleTimeout(_logger, RouteId, ClusterId, Destination, ClientAddress, AgeSeconds(now));
                _metrics?.Reaped(RouteId, ClusterId, "both", "idle_timeout");
                Terminate(CloseReason.IdleTimeout, CloseCodes.GoingAway, "idle", deadLeg: null, now);
                return;
            }

            if (!_idleObserved)
            {
                _idleObserved = true;
                Log.IdleObserved(_logger, RouteId, ClusterId, Destination, ClientAddress, AgeSeconds(now));
                _metrics?.ZombieObserved(RouteId, ClusterId, "both", "idle_timeout");
            }
        }
        else
        {
            _idleObserved = false;
        }

        CheckLeg(Leg.Client, now, policy);
        CheckLeg(Leg.Backend, now, policy);
    }

    private void CheckLeg(Leg which, long now, HeartbeatPolicy policy)
    {
        string? verdict;
        var ping = false;
        lock (_gate)
        {
            ref var leg = ref Of(which);
            if (!policy.Pings(which == Leg.Client ? HeartbeatLegs.Client : HeartbeatLegs.Backend) || _terminating)
            {
                leg.PingDue = 0;
                leg.PingWanted = false;
                return;
            }

            var pending = Volatile.Read(ref leg.PendingSince);
            if (pending != 0 || leg.PingSentAt != 0)
            {
                SampleProgress(ref leg, now);
            }

            // A leg whose bytes wait behind a write toward the other leg (YARP is busy delivering them
            // and does not read this one) counts as heard: one side's backpressure never makes the
            // other look dead.
            var heard = Volatile.Read(ref Of(which.Other()).PendingSince) != 0 ? now : Volatile.Read(ref leg.LastHeard);
            if (leg.PingSentAt != 0 ? heard >= leg.PingSentAt : leg.PingDue != 0 && heard >= leg.PingDue)
            {
                // It spoke since the ping was asked for or sent: alive (its pong may still come, and is
                // still recognised as the proxy's).
                leg.PingAnswered();
                leg.PingWanted = false;
            }

            var progress = Volatile.Read(ref leg.LastProgress);
            var pingWindow = Ticks(policy.PingInterval);
            var pongWindow = Ticks(policy.PongTimeout);
            // While a write toward the leg is under way, its pong may be queued behind that write's
            // bytes: the leg is judged on its consumption alone.
            verdict = pending != 0
                ? (now - Math.Max(Math.Max(pending, progress), leg.LastSharedProgress) >= pingWindow + pongWindow ? "no_progress" : null)
                : (leg.PingSentAt != 0 && now - Math.Max(leg.PingSentAt, progress) >= pongWindow ? "pong_timeout" : null);

            if (verdict is null)
            {
                leg.Observed = false;
                if (leg.PingSentAt == 0 && leg.PingDue == 0 && now - heard >= pingWindow && !leg.TakesNothingMore)
                {
                    leg.PingDue = now;
                }

                if (leg.PingDue != 0 && leg.PingSentAt == 0)
                {
                    // Asked for and not sent yet (no frame boundary, or the writer was busy): ask again.
                    leg.PingWanted = true;
                    ping = true;
                }
            }
            else if (policy.Mode != HeartbeatMode.Enforce)
            {
                if (leg.Observed)
                {
                    return;
                }

                // Observe: counted once, left alone; no new ping while this one is out (its late pong,
                // or any byte, brings the leg back).
                leg.Observed = true;
            }
        }

        if (ping)
        {
            RequestPing(which);
            return;
        }

        if (verdict is null)
        {
            return;
        }

        var tag = which.ToTag();
        if (policy.Mode == HeartbeatMode.Enforce)
        {
            Log.Reaped(_logger, RouteId, ClusterId, Destination, ClientAddress, tag, verdict, AgeSeconds(now), RttMs(Leg.Client), RttMs(Leg.Backend));
            _metrics?.Reaped(RouteId, ClusterId, tag, verdict);
            Terminate(which == Leg.Client ? CloseReason.ClientDead : CloseReason.BackendDead, CloseCodes.GoingAway,
                which == Leg.Client ? "client unresponsive" : "backend unresponsive", which, now);
            return;
        }

        Log.ZombieObserved(_logger, RouteId, ClusterId, Destination, ClientAddress, tag, verdict, AgeSeconds(now), RttMs(Leg.Client), RttMs(Leg.Backend));
        _metrics?.ZombieObserved(RouteId, ClusterId, tag, verdict);
    }

    // The kernel's acknowledged-bytes counter moved since the last sample: the leg consumed.
    private void SampleProgress(ref LegState leg, long now)
    {
        if (leg.Socket is not { } slot || !slot.TryReadBytesAcked(out var acked))
        {
            return;
        }

        if (leg.AckedSampled && acked != leg.AckedBytes)
        {
            Volatile.Write(ref slot.Socket is null ? ref leg.LastSharedProgress : ref leg.LastProgress, now);
        }

        leg.AckedBytes = acked;
        leg.AckedSampled = true;
    }

    // Bytes toward a leg were handed to a write that has not completed.
    private void BeginPending(ref LegState leg, long now) => Volatile.Write(ref leg.PendingSince, now);

    // That write completed. Without the kernel's counter, a completed write is the progress signal.
    // The clock is read only then (a timestamp is the cost of this on the per-read path).
    private void EndPending(ref LegState leg, long now = 0)
    {
        Volatile.Write(ref leg.PendingSince, 0);

        // With a socket of its own, only the kernel's counter says the peer consumed. Sharing an HTTP/2
        // connection's sockets, a completed write still counts too (either sign of life will do).
        if (leg.Socket?.Socket is null || !TcpProgress.Supported)
        {
            Volatile.Write(ref leg.LastProgress, now != 0 ? now : _time.GetTimestamp());
        }
    }

    private void RequestPing(Leg leg)
    {
        if (leg == Leg.Client)
        {
            _ = TrySendForClientAsync();
        }
        else
        {
            WakeReader();
        }
    }

    // A Pong from a leg is the proxy's only if it answers the ping to that same leg that is still
    // outstanding: its payload carries that leg's tag and that ping's sequence number. Anything else
    // (the peers' own pongs, unsolicited pongs, a copy of a ping payload the client saw) passes through.
    private bool TryTakeOurPong(Leg from, FrameHeader header, ReadOnlySpan<byte> frame, long now)
    {
        if (header.PayloadLength != PingPayloadLength)
        {
            return false;
        }

        Span<byte> payload = stackalloc byte[PingPayloadLength];
        header.CopyPayload(frame, payload);
        var sentAt = 0L;
        lock (_gate)
        {
            ref var leg = ref Of(from);
            var seq = BinaryPrimitives.ReadUInt64BigEndian(payload[8..]);
            if (leg.UnansweredFrom == 0 || seq < leg.UnansweredFrom || seq > leg.LastPingSeq ||
                BinaryPrimitives.ReadUInt64BigEndian(payload) != leg.PingTag)
            {
                return false;
            }

            // Earlier pings are taken as answered by this one; a round trip is timed only for the latest.
            leg.UnansweredFrom = seq == leg.LastPingSeq ? 0 : seq + 1;
            if (seq == leg.LastPingSeq)
            {
                sentAt = leg.LastPingSentAt;
                leg.PingAnswered();
                if (sentAt != 0 && sentAt <= now)
                {
                    Volatile.Write(ref leg.Rtt, now - sentAt);
                }
            }
        }

        if (sentAt != 0 && sentAt <= now)
        {
            _metrics?.PongRtt(RouteId, from.ToTag(), _time.GetElapsedTime(sentAt, now));
        }

        return true;
    }

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    private double AgeSeconds(long now) => Math.Round(_time.GetElapsedTime(OpenedAt, now).TotalSeconds, 3);

    /// <summary>The leg's last pong RTT in milliseconds for the log lines, or "none" if it never answered a ping.</summary>
    private string RttMs(Leg leg) =>
        LastRtt(leg) is { } rtt ? Math.Round(rtt.TotalMilliseconds, 3).ToString(CultureInfo.InvariantCulture) : "none";
}
