using System.Buffers.Binary;
using System.Text;
using ReaperProxy.Configuration;
using ReaperProxy.Framing;

namespace ReaperProxy.Fuzz;

/// <summary>
/// Judges one relay run, each direction on its own: what the receiver got must be what the sender sent
/// (read by <see cref="WireModel"/> up to the sender's Close or first invalid frame), frame for frame and
/// byte for byte, minus exactly the pongs that answer the proxy's pings to the sender, plus the proxy's
/// own pings (16-byte payload: the receiver leg's tag, then 1, 2, 3, …) and Closes — whole frames, so only
/// at frame boundaries, masked toward the backend and not toward the client. Nothing follows a Close. An
/// invalid frame is never forwarded, not one byte of it, and in Enforce the receiver is sent a Close once
/// the proxy has seen it. While the connection is open and healthy, nothing is lost.
/// </summary>
internal static class RelayOracle
{
    // RelayConnection's window of unanswered pings a late pong may still answer.
    private const ulong PongWindow = 16;

    public static void Check(RelayObservation run)
    {
        var c2bModel = WireModel.Read(run.ClientSent, stopAfterClose: true, masked: true);
        var b2cModel = WireModel.Read(run.BackendSent, stopAfterClose: true, masked: false);

        // Observe and Off stop parsing at a protocol error and pass everything through from there, both ways.
        var passThrough = run.Mode != HeartbeatMode.Enforce && (c2bModel.ErrorOffset is not null || b2cModel.ErrorOffset is not null);
        if (passThrough)
        {
            // Unparsed from some point on: a Close no longer ends what is forwarded.
            c2bModel = WireModel.Read(run.ClientSent, stopAfterClose: false, masked: true);
            b2cModel = WireModel.Read(run.BackendSent, stopAfterClose: false, masked: false);
        }

        var c2b = Match("client->backend", run.ClientSent, c2bModel, run.BackendReceived, toBackend: true, run.BackendTag, run.ClientTag,
            CountPings(run.ClientReceived, run.ClientTag, masked: false), passThrough);
        var b2c = Match("backend->client", run.BackendSent, b2cModel, run.ClientReceived, toBackend: false, run.ClientTag, run.BackendTag,
            CountPings(run.BackendReceived, run.BackendTag, masked: true), passThrough);

        var healthy = run.State == "open" && !run.Aborted && !c2b.CloseSeen && !b2c.CloseSeen && !passThrough
            && c2bModel.ErrorOffset is null && b2cModel.ErrorOffset is null;
        if (healthy)
        {
            if (run.ReaderRunning)
            {
                c2b.RequireComplete();
            }

            b2c.RequireComplete();
        }

        if (run.Mode == HeartbeatMode.Enforce && !run.Aborted)
        {
            // The proxy saw the invalid frame (everything before it went by): the receiver is told to close.
            if (c2bModel.ErrorOffset is not null && c2b.Consumed == c2bModel.Frames.Count && run.ReaderRunning && !run.BackendDead)
            {
                PropertyViolation.Check(c2b.CloseSeen, $"client->backend: invalid frame at {c2bModel.ErrorOffset} ({c2bModel.Error}) and the backend got no Close (state {run.State}, reason {run.Reason})");
            }

            if (b2cModel.ErrorOffset is not null && b2c.Consumed == b2cModel.Frames.Count && !run.ClientDead)
            {
                PropertyViolation.Check(b2c.CloseSeen, $"backend->client: invalid frame at {b2cModel.ErrorOffset} ({b2cModel.Error}) and the client got no Close (state {run.State}, reason {run.Reason})");
            }
        }
    }

    private static ulong CountPings(byte[] received, ulong tag, bool masked)
    {
        ulong count = 0;
        foreach (var frame in WireModel.Read(received, stopAfterClose: false).Frames)
        {
            if (IsProxyPing(frame, tag, masked, out _))
            {
                count++;
            }
        }

        return count;
    }

    private static bool IsProxyPing(ModelFrame frame, ulong tag, bool masked, out ulong sequence)
    {
        sequence = 0;
        if (!frame.Complete || frame.Opcode != WebSocketOpcode.Ping || frame.Masked != masked || frame.Payload.Length != 16
            || BinaryPrimitives.ReadUInt64BigEndian(frame.Payload) != tag)
        {
            return false;
        }

        sequence = BinaryPrimitives.ReadUInt64BigEndian(frame.Payload.AsSpan(8));
        return true;
    }

    // A pong carrying the sender leg's tag: an answer to one of the proxy's pings to it.
    private static bool IsAnswerToProxy(ModelFrame frame, ulong senderTag, out ulong sequence)
    {
        sequence = 0;
        if (!frame.Complete || frame.Opcode != WebSocketOpcode.Pong || frame.Payload.Length != 16 || BinaryPrimitives.ReadUInt64BigEndian(frame.Payload) != senderTag)
        {
            return false;
        }

        sequence = BinaryPrimitives.ReadUInt64BigEndian(frame.Payload.AsSpan(8));
        return true;
    }

    private static Direction Match(string name, byte[] sent, WireModel model, byte[] received, bool toBackend, ulong receiverTag, ulong senderTag,
        ulong pingsToSender, bool passThrough)
    {
        if (!passThrough)
        {
            return MatchOnce(name, sent, model, received, toBackend, receiverTag, senderTag, pingsToSender, passThrough, removals: -1);
        }

        // Passing through from some moment on: the proxy removed its pongs (the first answer to each ping)
        // until then and none after. Which moment is not observable, so each is tried: the first k answers
        // removed, for every k; one must explain what the receiver got.
        var answers = 0;
        foreach (var frame in model.Frames)
        {
            answers += IsAnswerToProxy(frame, senderTag, out _) ? 1 : 0;
        }

        PropertyViolation? first = null;
        for (var k = 0; k <= answers; k++)
        {
            try
            {
                return MatchOnce(name, sent, model, received, toBackend, receiverTag, senderTag, pingsToSender, passThrough, k);
            }
            catch (PropertyViolation violation)
            {
                first ??= violation;
            }
        }

        throw first!;
    }

    private static Direction MatchOnce(string name, byte[] sent, WireModel model, byte[] received, bool toBackend, ulong receiverTag, ulong senderTag,
        ulong pingsToSender, bool passThrough, int removals)
    {
        var output = WireModel.Read(received, stopAfterClose: false);
        var direction = new Direction(name, sent, model, received, senderTag, pingsToSender, passThrough, removals);
        ulong pingSeq = 0;
        int? rawFrom = null;
        foreach (var o in output.Frames)
        {
            if (rawFrom is not null)
            {
                break;
            }

            // (Passing through, the proxy no longer parses: a Close is just bytes, as Observe documents.)
            PropertyViolation.Check(!direction.CloseSeen || passThrough, $"{name}: {Describe(o)} forwarded after a Close");
            while (true)
            {
                var f = direction.Consumed < model.Frames.Count ? model.Frames[direction.Consumed] : null;
                if (f is not null && IsAnswerToProxy(f, senderTag, out var seq) && direction.MustRemove(seq))
                {
                    // The proxy's own pong is removed whatever follows it (a duplicate of it must then match
                    // the next output frame, or nothing does and the forwarded one is reported below).
                    direction.Taken(seq);
                    continue;
                }

                if (f is not null && Same(sent, f, received, o, passThrough))
                {
                    if (o.Complete)
                    {
                        direction.Consumed++;
                        direction.CloseSeen = o.Opcode == WebSocketOpcode.Close;
                    }
                    else
                    {
                        direction.PartialForwarded = o.Length;
                    }

                    break;
                }

                if (f is not null && IsAnswerToProxy(f, senderTag, out var maybe) && direction.MayRemove(maybe) && !Same(sent, f, received, o, passThrough))
                {
                    // Removed or not, either is right here (a pass-through, or more pings out than the window).
                    direction.Taken(maybe);
                    continue;
                }

                if (IsProxyPing(o, receiverTag, toBackend, out var pingSequence))
                {
                    PropertyViolation.Check(pingSequence == ++pingSeq, $"{name}: the proxy's ping at {o.Offset} has sequence {pingSequence}, expected {pingSeq}");
                    break;
                }

                if (o is { Complete: true, Opcode: WebSocketOpcode.Close } && o.Masked == toBackend)
                {
                    CheckProxyClose(name, o);
                    direction.CloseSeen = true;
                    break;
                }

                if (f is not null && IsAnswerToProxy(f, senderTag, out var answered))
                {
                    PropertyViolation.Check(direction.MayRemove(answered), $"{name}: the pong at {f.Offset} (ping {answered}) was removed, but an earlier pong had answered it");
                    direction.Taken(answered);
                    continue;
                }

                if (passThrough)
                {
                    // Unparsed from here on: the rest must be the sender's bytes as they were.
                    rawFrom = o.Offset;
                    break;
                }

                throw new PropertyViolation($"{name}: {Describe(o)} at output offset {o.Offset} is neither the next frame sent ({(f is null ? model.ErrorOffset is { } bad ? $"the invalid frame at {bad}: {model.Error}" : "none left" : Describe(f))}) nor one of the proxy's own");
            }
        }

        if ((rawFrom ?? output.ErrorOffset) is { } outputError)
        {
            // Only a pass-through (Observe after a protocol error) forwards bytes the model calls invalid,
            // and then exactly the bytes that were sent, from where the frames stopped.
            // The proxy's pongs just before the pass-through began were still removed.
            var rest = received.AsSpan(outputError);
            var matched = false;
            for (var k = direction.Consumed; passThrough && !matched; k++)
            {
                var from = k < model.Frames.Count ? model.Frames[k].Offset : model.ErrorOffset ?? sent.Length;
                matched = sent.Length - from >= rest.Length && rest.SequenceEqual(sent.AsSpan(from, rest.Length));
                if (k >= model.Frames.Count || !IsAnswerToProxy(model.Frames[k], senderTag, out _))
                {
                    break;
                }
            }

            PropertyViolation.Check(matched, $"{name}: the receiver got {(rawFrom is null ? $"an invalid frame ({output.Error})" : "bytes")} at output offset {outputError} that are not the sender's bytes passed through");
        }

        direction.TakeTrailingPongs();
        return direction;
    }

    private static void CheckProxyClose(string name, ModelFrame close)
    {
        if (close.Payload.Length == 0)
        {
            return;
        }

        PropertyViolation.Check(close.Payload.Length >= 2, $"{name}: the proxy's Close at {close.Offset} has a 1-byte payload");
        var code = BinaryPrimitives.ReadUInt16BigEndian(close.Payload);
        PropertyViolation.Check(CloseCodes.IsSendable(code), $"{name}: the proxy's Close at {close.Offset} carries code {code}, which no endpoint may send");
        try
        {
            _ = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(close.Payload, 2, close.Payload.Length - 2);
        }
        catch (DecoderFallbackException)
        {
            throw new PropertyViolation($"{name}: the proxy's Close at {close.Offset} has a reason that is not UTF-8");
        }
    }

    private static bool Same(byte[] sent, ModelFrame f, byte[] received, ModelFrame o, bool passThrough)
    {
        if (o.Complete)
        {
            return f.Complete && o.Length == f.Length && received.AsSpan(o.Offset, o.Length).SequenceEqual(sent.AsSpan(f.Offset, f.Length));
        }

        // A data frame still streaming: its header whole, its payload as far as it came. Passing through
        // unparsed, any prefix of what was sent.
        return (passThrough || (!f.IsControl && o.HeaderLength > 0)) && o.Length <= f.Length && received.AsSpan(o.Offset, o.Length).SequenceEqual(sent.AsSpan(f.Offset, o.Length));
    }

    private static string Describe(ModelFrame f) =>
        $"{(f.Complete ? "" : "partial ")}frame opcode {f.Opcode}{(f.Fin ? " FIN" : "")}{(f.Masked ? " masked" : "")} length {f.PayloadLength} at {f.Offset}";

    /// <summary>How far one direction's output got through what its sender sent.</summary>
    private sealed class Direction(string name, byte[] sent, WireModel model, byte[] received, ulong senderTag, ulong pingsToSender, bool passThrough, int removals)
    {
        private ulong _highestTaken;
        private int _removed;

        /// <summary>Input frames forwarded or removed, in order.</summary>
        public int Consumed { get; set; }

        /// <summary>Bytes of the next input frame (a data frame still streaming) already forwarded.</summary>
        public int PartialForwarded { get; set; }

        public bool CloseSeen { get; set; }

        // The relay takes a pong for ping s when no pong for s or a later ping was taken before, and s is
        // within the window of the last pings sent; with more pings out than that, either is right.
        // Passing through, the first `removals` answers are taken and no other (see Match).
        public bool MustRemove(ulong s) => passThrough ? s > _highestTaken && _removed < removals : s > _highestTaken && pingsToSender < s + PongWindow;

        public bool MayRemove(ulong s) => passThrough ? MustRemove(s) : s > _highestTaken || pingsToSender >= s + PongWindow;

        public void Taken(ulong s)
        {
            _removed++;
            _highestTaken = Math.Max(_highestTaken, s);
            Consumed++;
        }

        /// <summary>Pongs the proxy must remove at the end of what was sent: removed even though nothing follows them.</summary>
        public void TakeTrailingPongs()
        {
            while (!CloseSeen && PartialForwarded == 0 && Consumed < model.Frames.Count && IsAnswerToProxy(model.Frames[Consumed], senderTag, out var s) && MustRemove(s))
            {
                Taken(s);
            }
        }

        /// <summary>Nothing lost: every frame sent went on (or was the proxy's pong), and a frame still streaming as far as it came.</summary>
        public void RequireComplete()
        {
            var frames = model.Frames;
            if (Consumed == frames.Count)
            {
                return;
            }

            var next = frames[Consumed];
            var last = Consumed == frames.Count - 1 && !next.Complete;
            if (last && (next.HeaderLength == 0 || next.IsControl))
            {
                // A header or control frame not complete yet: held by the proxy until the rest arrives.
                PropertyViolation.Check(PartialForwarded == 0, $"{name}: part of the incomplete {Describe(next)} was forwarded");
                return;
            }

            PropertyViolation.Check(last && PartialForwarded == next.Length,
                $"{name}: lost on a healthy connection: {Describe(next)} and what follows ({sent.Length - next.Offset - PartialForwarded} of {sent.Length} bytes sent; {received.Length} received)");
        }
    }
}
