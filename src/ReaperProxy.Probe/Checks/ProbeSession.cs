using System.Net.Sockets;
using ReaperProxy.Probe.Protocol;

namespace ReaperProxy.Probe.Checks;

/// <summary>
/// One check's connection with its bookkeeping: the clock from the upgrade, the limit, what the server
/// sent (pings, pongs, Close, data) and how the connection ended. How the probe answers is set per check:
/// <see cref="AnswerPings"/> (a masked Pong with the Ping's payload, RFC 6455 §5.5.3) and
/// <see cref="AnswerClose"/> (a Close echoing the server's code, §5.5.1).
/// </summary>
internal sealed class ProbeSession : IAsyncDisposable
{
    private static readonly TimeSpan s_closeGrace = TimeSpan.FromSeconds(1);
    private readonly TimeProvider _time;
    private readonly CheckProgress _progress;
    private readonly CancellationToken _interrupt;
    private readonly CancellationTokenSource _limit;
    private readonly List<TimeSpan> _pingTimes = [];
    private readonly TaskCompletionSource<CloseSeen> _closeReceived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _gate = new();
    private readonly List<CancellationTokenSource> _owned = [];
    private volatile bool _answerPings;
    private int _pongsSent;
    private long _dataBytes;
    private CloseSeen? _closeSent;
    private TimeSpan? _concludedAt;

    public ProbeSession(WebSocketConnection connection, TimeProvider time, CheckProgress progress, TimeSpan limit, CancellationToken interrupt)
    {
        Connection = connection;
        _time = time;
        _progress = progress;
        _interrupt = interrupt;
        StartedAt = time.GetTimestamp();
        Limit = limit;
        _limit = CancellationTokenSource.CreateLinkedTokenSource(interrupt);
        _limit.CancelAfter(limit);
    }

    public WebSocketConnection Connection { get; }

    /// <summary>The timestamp of the upgrade (<see cref="TimeProvider.GetTimestamp"/>).</summary>
    public long StartedAt { get; }

    public TimeSpan Limit { get; }

    /// <summary>Cancelled at the limit or on Ctrl-C: every wait of the check uses it.</summary>
    public CancellationToken Token => _limit.Token;

    /// <summary>Ctrl-C came.</summary>
    public bool Interrupted => _interrupt.IsCancellationRequested;

    /// <summary>Time since the upgrade.</summary>
    public TimeSpan Elapsed => _time.GetElapsedTime(StartedAt);

    /// <summary>Answer each Ping with a Pong carrying its payload.</summary>
    public bool AnswerPings
    {
        get => _answerPings;
        set => _answerPings = value;
    }

    /// <summary>Answer the server's Close, as a correct client does.</summary>
    public bool AnswerClose { get; set; }

    /// <summary>Once the server's Close arrives, send nothing more at all (not even pongs).</summary>
    public bool SilentAfterClose { get; set; }

    /// <summary>Called for each Pong from the server, with its arrival time.</summary>
    public Action<Frame, TimeSpan>? OnPong { get; set; }

    /// <summary>Called after each data frame, with the data byte count so far.</summary>
    public Action<long>? OnData { get; set; }

    /// <summary>Completes when the server's first Close arrives.</summary>
    public Task<CloseSeen> CloseReceivedTask => _closeReceived.Task;

    public CloseSeen? CloseReceived => _closeReceived.Task.IsCompletedSuccessfully ? _closeReceived.Task.Result : null;

    public CloseSeen? CloseSent
    {
        get
        {
            lock (_gate)
            {
                return _closeSent;
            }
        }
    }

    public StreamEnd End { get; private set; }

    /// <summary>When the server ended the connection, from the upgrade.</summary>
    public TimeSpan? EndedAfter { get; private set; }

    public IReadOnlyList<TimeSpan> PingTimes
    {
        get
        {
            lock (_gate)
            {
                return [.. _pingTimes];
            }
        }
    }

    public int PongsSent => Volatile.Read(ref _pongsSent);

    public long DataBytes => Interlocked.Read(ref _dataBytes);

    /// <summary>When the first data frame arrived.</summary>
    public TimeSpan? FirstDataAt { get; private set; }

    /// <summary>
    /// Reads (everything, as fast as the stream gives it) until the server ends the connection (true) or
    /// <paramref name="token"/> is cancelled (false).
    /// </summary>
    public async Task<bool> WaitForEndAsync(CancellationToken token)
    {
        try
        {
            while (true)
            {
                var frame = await Connection.Reader.ReadFrameAsync(token);
                if (frame is null)
                {
                    MarkEnded(Connection.Reader.End);
                    return true;
                }

                await HandleAsync(frame, token);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>A token cancelled at the limit, on Ctrl-C, or <paramref name="grace"/> after the server's Close arrived.</summary>
    public CancellationToken UntilAfterClose(TimeSpan grace)
    {
        var stop = CancellationTokenSource.CreateLinkedTokenSource(Token);
        lock (_gate)
        {
            _owned.Add(stop);
        }

        _ = _closeReceived.Task.ContinueWith(
            _ =>
            {
                try
                {
                    stop.CancelAfter(grace);
                }
                catch (ObjectDisposedException)
                {
                    // The check is over.
                }
            },
            TaskScheduler.Default);
        return stop.Token;
    }

    /// <summary>Records that the server ended the connection (for checks that watch the TCP state instead of reading).</summary>
    public void MarkEnded(StreamEnd end)
    {
        // After the check concluded, the end belongs to the probe's own closing handshake, not to what was measured.
        if (End != StreamEnd.None || _concludedAt is not null)
        {
            return;
        }

        End = end;
        EndedAfter = Elapsed;
        _progress.Status = end == StreamEnd.Fin ? "ended by the server" : "reset by the server";
        _progress.Note(end == StreamEnd.Fin ? "the server ended the connection (TCP FIN)" : "the connection was reset (TCP RST)");
    }

    /// <summary>Sends a Close with <paramref name="code"/> and <paramref name="reason"/> (best effort).</summary>
    public async Task SendCloseAsync(int code, string reason, CancellationToken token)
    {
        lock (_gate)
        {
            if (_closeSent is not null)
            {
                return;
            }

            _closeSent = new CloseSeen(code, reason, Elapsed);
        }

        await TrySendAsync(Opcode.Close, code == 1005 ? [] : FrameWriter.ClosePayload(code, reason), token);
    }

    /// <summary>Sends a frame; false if the connection is already gone (its reads will say how).</summary>
    public async Task<bool> TrySendAsync(Opcode opcode, ReadOnlyMemory<byte> payload, CancellationToken token)
    {
        try
        {
            await Connection.Writer.SendAsync(opcode, payload, token);
            return true;
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException && !token.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>
    /// Ends the check as a correct client would: Close 1000, then up to a second for the server's reply and its end
    /// of TCP (RFC 6455 §7.1.1: the server closes first), so the server under audit logs a clean close.
    /// <paramref name="reader"/> is the check's own read loop, if one is still running (only one may read).
    /// </summary>
    public async Task CloseNormallyAsync(Task? reader = null)
    {
        Conclude();
        if (End != StreamEnd.None || CloseSent is not null)
        {
            return;
        }

        using var bound = CancellationTokenSource.CreateLinkedTokenSource(_interrupt);
        bound.CancelAfter(s_closeGrace);
        try
        {
            await SendCloseAsync(1000, "reaperproxy-probe done", bound.Token);
            if (reader is not null)
            {
                await reader.WaitAsync(bound.Token);
            }
            else
            {
                await WaitForEndAsync(bound.Token);
            }
        }
        catch (OperationCanceledException)
        {
            // A server that does not answer in time: the connection ends anyway.
        }
    }

    /// <summary>The check has its answer: its elapsed time stops here (a closing handshake after it is not part of the check).</summary>
    public void Conclude() => _concludedAt ??= Elapsed;

    /// <summary>The fields every result has, filled from this session.</summary>
    public CheckResult Result(string check, Verdict verdict, string summary, string measured, ConnectionEnd? endedBy = null) => new()
    {
        Check = check,
        Verdict = verdict,
        Summary = summary,
        Measured = measured,
        Limit = Limit,
        Elapsed = _concludedAt ?? Elapsed,
        Interrupted = Interrupted && End == StreamEnd.None,
        EndedBy = End switch
        {
            StreamEnd.Fin => ConnectionEnd.ServerFin,
            StreamEnd.Reset => ConnectionEnd.ServerReset,
            _ => endedBy ?? (Interrupted ? ConnectionEnd.Interrupted : ConnectionEnd.StillOpen),
        },
        EndedAfter = EndedAfter,
        CloseReceived = CloseReceived,
        CloseSent = CloseSent,
        PingTimes = PingTimes,
        PongsSent = PongsSent,
        DataBytesReceived = DataBytes,
    };

    /// <summary>"no ping", "1 ping (at 1.0 s)", "3 pings, every 1.0 s".</summary>
    public string PingsText()
    {
        var times = PingTimes;
        if (times.Count == 0)
        {
            return "no ping received";
        }

        if (times.Count == 1)
        {
            return $"1 ping received (at {Durations.Format(times[0])})";
        }

        var gaps = times.Zip(times.Skip(1), (a, b) => b - a).ToList();
        var min = gaps.Min();
        var max = gaps.Max();
        var spacing = max - min < TimeSpan.FromMilliseconds(100) ? Durations.Format(min) : $"{Durations.Format(min)}-{Durations.Format(max)}";
        return $"{times.Count} pings received, every {spacing}";
    }

    public async ValueTask DisposeAsync()
    {
        await Connection.DisposeAsync();
        lock (_gate)
        {
            _owned.ForEach(cts => cts.Dispose());
        }

        _limit.Dispose();
    }

    private async Task HandleAsync(Frame frame, CancellationToken token)
    {
        switch (frame.Opcode)
        {
            case Opcode.Ping:
                int count;
                lock (_gate)
                {
                    _pingTimes.Add(Elapsed);
                    count = _pingTimes.Count;
                }

                var answer = AnswerPings && CloseSent is null && !(SilentAfterClose && CloseReceived is not null);
                _progress.Status = $"open, {count} ping{(count == 1 ? string.Empty : "s")}";
                _progress.Note($"ping {count} received{(answer ? ", answered" : ", not answered")}");
                if (answer && await TrySendAsync(Opcode.Pong, frame.Payload, token))
                {
                    Interlocked.Increment(ref _pongsSent);
                }

                break;

            case Opcode.Pong:
                OnPong?.Invoke(frame, Elapsed);
                break;

            case Opcode.Close when _concludedAt is not null:
                // The reply to the probe's closing Close: not part of what the check measured.
                break;

            case Opcode.Close:
                var seen = new CloseSeen(frame.CloseCode, frame.CloseReason, Elapsed);
                if (!_closeReceived.TrySetResult(seen))
                {
                    break;
                }

                _progress.Status = $"Close {seen.Code} received";
                _progress.Note($"Close {seen.Code}{(seen.Reason.Length > 0 ? $" '{seen.Reason}'" : string.Empty)} received" +
                    (CloseSent is not null ? " (the reply to the probe's Close)" : AnswerClose ? ", answered" : ", not answered"));
                if (AnswerClose)
                {
                    // Echo its code where one may be sent (RFC 6455 §7.4.1: 1005 and 1006 never go on the wire).
                    var code = seen.Code is 1005 or 1006 or 1015 ? 1005 : seen.Code;
                    await SendCloseAsync(code, string.Empty, token);
                }

                break;

            case Opcode.Text or Opcode.Binary or Opcode.Continuation:
                var total = Interlocked.Add(ref _dataBytes, frame.Length);
                FirstDataAt ??= Elapsed;
                OnData?.Invoke(total);
                break;
        }
    }
}
