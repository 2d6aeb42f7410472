using System.Text;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>
/// A child process's standard output or error as it arrives: lines appended from the process's event
/// threads, read whole at any time (ProxyProcess, LoadTestProcess and the probe tests' ChildProcess).
/// </summary>
internal sealed class OutputLines
{
    private readonly StringBuilder _text = new();

    /// <summary>Appends a line; null (the end of the stream) is ignored.</summary>
    public void Add(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_text)
        {
            _text.Append(line).Append('\n');
        }
    }

    /// <summary>Everything so far, one line per <c>\n</c>.</summary>
    public override string ToString()
    {
        lock (_text)
        {
            return _text.ToString();
        }
    }
}
