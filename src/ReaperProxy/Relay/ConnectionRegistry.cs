using System.Collections.Concurrent;

namespace ReaperProxy.Relay;

/// <summary>The live heartbeat-managed WebSockets, walked by the scheduler and listed by the admin API.</summary>
internal sealed class ConnectionRegistry
{
    private readonly ConcurrentDictionary<long, RelayConnection> _connections = new();
    private long _nextId;

    public int Count => _connections.Count;

    public long NextId() => Interlocked.Increment(ref _nextId);

    public void Add(RelayConnection connection) => _connections[connection.Id] = connection;

    public void Remove(RelayConnection connection) => _connections.TryRemove(connection.Id, out _);

    /// <summary>A moment's view; safe to enumerate while connections come and go.</summary>
    public ICollection<RelayConnection> Snapshot() => _connections.Values;

    /// <summary>Enumerates without taking a snapshot (the scheduler's walk).</summary>
    public IEnumerable<KeyValuePair<long, RelayConnection>> Entries => _connections;
}
