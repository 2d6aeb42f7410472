using System.Collections.Concurrent;

namespace ReaperProxy.Relay;

/// <summary>The live heartbeat-managed WebSockets, walked by the scheduler and listed by the admin API.</summary>
/// <remarks>
/// Kept in <see cref="Shards"/> groups (by id) so the scheduler can walk one group per sub-tick: the
/// pings of connections that went quiet in the same second then go out spread over that second instead
/// of in one burst, which would hold a socket buffer per ping in flight (Kestrel's pool keeps what a
/// burst made it allocate) and delay live traffic behind thousands of writes.
/// </remarks>
internal sealed class ConnectionRegistry
{
    /// <summary>How many groups the connections are spread over.</summary>
    public const int Shards = 8;

    private readonly ConcurrentDictionary<long, RelayConnection>[] _shards =
        [.. Enumerable.Range(0, Shards).Select(_ => new ConcurrentDictionary<long, RelayConnection>())];

    private long _nextId;

    public int Count => _shards.Sum(s => s.Count);

    public long NextId() => Interlocked.Increment(ref _nextId);

    public void Add(RelayConnection connection) => ShardOf(connection.Id)[connection.Id] = connection;

    public void Remove(RelayConnection connection) => ShardOf(connection.Id).TryRemove(connection.Id, out _);

    /// <summary>A moment's view of each group in turn; safe to enumerate while connections come and go.</summary>
    public IEnumerable<RelayConnection> Snapshot() => _shards.SelectMany(s => s.Values);

    /// <summary>Enumerates one group without taking a snapshot (the scheduler's walk).</summary>
    public IEnumerable<KeyValuePair<long, RelayConnection>> Entries(int shard) => _shards[shard];

    private ConcurrentDictionary<long, RelayConnection> ShardOf(long id) => _shards[(int)(id % Shards)];
}
