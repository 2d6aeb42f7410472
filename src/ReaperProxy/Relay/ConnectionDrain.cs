using System.Collections.Concurrent;
using ReaperProxy.Configuration;

namespace ReaperProxy.Relay;

/// <summary>
/// Graceful drain on shutdown. When the host starts stopping, every proxied WebSocket still open gets
/// its Close 1001 "proxy shutting down" at its own moment, spread evenly over <c>Reaper:Drain:Period</c>,
/// so that thousands of clients do not reconnect (to the other replicas) in the same instant. Each
/// closing handshake is bounded by its CloseTimeout as usual, so the last connection ends by
/// <c>Period + CloseTimeout</c>. WebSockets on <c>Off</c> routes are plain YARP pass-through: no Close can
/// be put into their byte stream, so at their moment their connections are ended. New upgrades are
/// refused with 503 meanwhile (the middleware asks <see cref="IsDraining"/>). <see cref="Hurry"/> (a
/// second SIGTERM) closes everything left at once and ends it shortly after.
/// </summary>
internal sealed class ConnectionDrain
{
    // Closes due within this of each other go out in one wake-up.
    private static readonly TimeSpan s_batch = TimeSpan.FromMilliseconds(10);

    // After Hurry, how long the remaining closing handshakes get before their connections are ended.
    private static readonly TimeSpan s_hurryGrace = TimeSpan.FromSeconds(1);

    private readonly ConnectionRegistry _registry;
    private readonly ReaperSettingsMonitor _settings;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<HttpContext, byte> _passThrough = new();
    private readonly CancellationTokenSource _hurry = new();
    private int _started;
    private Task _completion = Task.CompletedTask;

    public ConnectionDrain(ConnectionRegistry registry, ReaperSettingsMonitor settings, TimeProvider time, ILoggerFactory loggerFactory)
    {
        _registry = registry;
        _settings = settings;
        _time = time;
        _logger = loggerFactory.CreateLogger("ReaperProxy.Heartbeat");
    }

    /// <summary>Whether shutdown has begun: new WebSockets are refused.</summary>
    public bool IsDraining => Volatile.Read(ref _started) != 0;

    /// <summary>Tracks a pass-through (<c>Off</c>) WebSocket so the drain can end it; dispose when it ends.</summary>
    public PassThroughLease TrackPassThrough(HttpContext context)
    {
        _passThrough[context] = 0;
        return new PassThroughLease(this, context);
    }

    /// <summary>Starts the drain (once); returns at once.</summary>
    public void Begin()
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            return;
        }

        var period = _settings.Current.DrainPeriod;
        Volatile.Write(ref _completion, Task.Run(() => RunAsync(period)));
    }

    /// <summary>A second stop signal: what is left gets its Close now, and is ended a moment later.</summary>
    public void Hurry()
    {
        if (!IsDraining || _hurry.IsCancellationRequested)
        {
            return;
        }

        // A Ctrl-C in a terminal reaches the process twice (SIGINT to the group, then its supervisor's
        // SIGTERM): say so only when something is cut short.
        if (_registry.Count + _passThrough.Count is var left and > 0)
        {
            Log.DrainHurried(_logger, left);
        }

        _hurry.Cancel();
    }

    private async Task RunAsync(TimeSpan period)
    {
        // Oldest first: they have had the longest use of this replica.
        var relayed = _registry.Snapshot().Where(c => c.IsAttached).OrderBy(c => c.OpenedAt).ToList();
        var passThrough = _passThrough.Keys.ToList();
        var total = relayed.Count + passThrough.Count;
        Log.DrainStarted(_logger, relayed.Count, passThrough.Count, Duration.Format(period));

        var start = _time.GetTimestamp();
        for (var i = 0; i < total;)
        {
            var elapsed = _time.GetElapsedTime(start);
            while (i < total && (_hurry.IsCancellationRequested || DueAt(i, total, period) <= elapsed + s_batch))
            {
                if (i < relayed.Count)
                {
                    relayed[i].BeginShutdown();
                }
                else
                {
                    passThrough[i - relayed.Count].Abort();
                }

                i++;
            }

            if (i < total)
            {
                try
                {
                    await Task.Delay(DueAt(i, total, period) - _time.GetElapsedTime(start), _time, _hurry.Token);
                }
                catch (OperationCanceledException)
                {
                    // Hurried: the rest go now.
                }
            }
        }

        // Anything that completed its upgrade after the drain began (it was already past the middleware).
        foreach (var connection in _registry.Snapshot())
        {
            connection.BeginShutdown();
        }

        foreach (var context in _passThrough.Keys)
        {
            context.Abort();
        }

        Log.DrainCompleted(_logger, total, Math.Round(_time.GetElapsedTime(start).TotalSeconds, 3));

        if (_hurry.IsCancellationRequested)
        {
            await EndWhatIsLeftAsync();
        }
        else
        {
            _ = _hurry.Token.Register(() => _ = EndWhatIsLeftAsync());
        }
    }

    /// <summary>
    /// Starts the drain if it has not started, and waits until every relayed WebSocket has ended, or
    /// until the drain's bound (<c>Period</c> + the longest CloseTimeout, and a second) has passed.
    /// </summary>
    public async Task WaitAsync(CancellationToken cancellationToken)
    {
        Begin();
        var settings = _settings.Current;
        var bound = settings.DrainPeriod + settings.LongestCloseTimeout + TimeSpan.FromSeconds(1);
        var start = _time.GetTimestamp();
        try
        {
            await Volatile.Read(ref _completion).WaitAsync(bound, _time, cancellationToken);
            while ((_registry.Count > 0 || !_passThrough.IsEmpty) && _time.GetElapsedTime(start) < bound)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(20), _time, cancellationToken);
            }
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            // The host's own shutdown timeout, or the bound: what is left is cut by the server.
        }
    }

    private async Task EndWhatIsLeftAsync()
    {
        await Task.Delay(s_hurryGrace, _time);
        foreach (var connection in _registry.Snapshot())
        {
            connection.Abort();
        }
    }

    // Connection i of n is closed at i/n of the period: the first at once, the last one step before its end.
    private static TimeSpan DueAt(int i, int n, TimeSpan period) => n <= 1 ? TimeSpan.Zero : period * i / n;

    /// <summary>Ends the tracking of a pass-through WebSocket.</summary>
    public readonly struct PassThroughLease(ConnectionDrain drain, HttpContext context) : IDisposable
    {
        public void Dispose() => drain._passThrough.TryRemove(context, out _);
    }
}
