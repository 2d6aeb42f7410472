namespace ReaperProxy.Fuzz;

/// <summary>
/// A single-threaded synchronization context: every continuation the relay, its streams and the harness
/// post runs here, on the fuzzing thread, in order. A run is then deterministic (AFL needs an input to
/// take the same path each time), and "nothing left to run" tells when the relay has done all it will
/// do with what it was given.
/// </summary>
internal sealed class Pump : SynchronizationContext
{
    // Far beyond anything a few kilobytes of input can need: more is a livelock, reported as such.
    private const int MaxStepsPerDrain = 200_000;

    private readonly Queue<(SendOrPostCallback Callback, object? State)> _queue = new();
    private readonly Lock _gate = new();
    private readonly AutoResetEvent _posted = new(false);

    public override void Post(SendOrPostCallback d, object? state)
    {
        lock (_gate)
        {
            _queue.Enqueue((d, state));
        }

        _posted.Set();
    }

    public override void Send(SendOrPostCallback d, object? state) => throw new NotSupportedException("nothing here blocks on the pump");

    public override SynchronizationContext CreateCopy() => this;

    /// <summary>Runs posted work until none is left.</summary>
    public void RunUntilIdle()
    {
        for (var steps = 0; ; steps++)
        {
            (SendOrPostCallback Callback, object? State) item;
            lock (_gate)
            {
                if (!_queue.TryDequeue(out item))
                {
                    return;
                }
            }

            PropertyViolation.Check(steps < MaxStepsPerDrain, $"relay: still busy after {MaxStepsPerDrain} continuations (a livelock)");
            item.Callback(item.State);
        }
    }

    /// <summary>
    /// Runs posted work until <paramref name="done"/> holds, waiting up to <paramref name="timeout"/> for
    /// work to arrive from other threads. The relay is single-threaded on the pump but for the few framework
    /// awaits that hop through the thread pool (SemaphoreSlim.WaitAsync with a token under contention);
    /// their continuations come back here a moment later.
    /// </summary>
    public bool RunUntil(Func<bool> done, TimeSpan timeout)
    {
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (true)
        {
            RunUntilIdle();
            if (done())
            {
                return true;
            }

            var left = deadline - Environment.TickCount64;
            if (left <= 0)
            {
                return false;
            }

            _posted.WaitOne(TimeSpan.FromMilliseconds(Math.Min(left, 50)));
        }
    }

    /// <summary>Runs <paramref name="body"/> with this as the current context, restoring the previous one after.</summary>
    public void Within(Action body)
    {
        var previous = Current;
        SetSynchronizationContext(this);
        try
        {
            body();
        }
        finally
        {
            SetSynchronizationContext(previous);
        }
    }
}
