"""Real reviews from the April-2023 Vicuna evaluation, verbatim, with the score FastChat stored.

Source: lm-sys/FastChat, ``fastchat/eval/table/review/`` (the files named below). FastChat read the
scores from a review's first line only; where that failed (every math review and most of
GPT-3.5-turbo's coding reviews), its authors typed the score into the file by hand, as integers.
Those hand-typed scores are the independent expectation here: what a person read in the review.
Texts are whole reviews unless marked ``head`` (the review's opening, cut at a line end) or
``tail`` (its closing part, from a line start). ``[-1, -1]`` is FastChat's "no verdict".

Left out on purpose: two reviews whose stored score contradicts their own text, a typing slip in
FastChat's file (gpt-4 review of bard vs vicuna-13b, question 70: text "Assistant 1: 10\\nAssistant 2:
4", stored [10, 2]; gpt-3.5-turbo review of vicuna-13b vs itself, question 65: text "Assistant 1:
9/10\\nAssistant 2: 9/10", stored [8, 8]).
"""

G35 = "gpt-3.5-turbo_review_vicuna-13b-20230322-new-hp-fp16/gpt-3.5-turbo_review_{}_vicuna-13b-20230322-new-hp-fp16.jsonl"
G4_13B = "vicuna-13b:20230322-clean-lang/review_{}_vicuna-13b.jsonl"

# (file, question_id, text, stored score)
REVIEWS = [
    # ---- gpt-3.5-turbo as the reviewer: the scores anywhere, in sentences
    (G35.format("alpaca-13b"), 61,
     "My evaluation of the two assistants' code submissions is as follows:\n\nAssistant 1:\nScore: 6/10\n\nStrengths:\n"
     "- Provides a clear problem statement and approach to solving it.\n- Mentions the need to read the file line by "
     "line and count the occurrences of a specific word.\n\nWeaknesses:\n- Does not provide any actual code "
     "implementation or explanation of how to accomplish the task.\n- Could benefit from more detailed instructions or "
     "examples.\n\nSuggestions for improvement:\n- Provide a more detailed explanation of how to read the file line by "
     "line and count the occurrences of a specific word.\n- Include code snippets or examples to help illustrate the "
     "process.\n\nAssistant 2:\nScore: 8/10\n\nStrengths:\n- Provides a complete code implementation that reads a file "
     "line by line and counts the number of occurrences of a specific word.\n- Uses appropriate header files and "
     "variable names.\n- Includes comments to explain the code's logic and functionality.\n\nWeaknesses:\n- Could "
     "benefit from more detailed comments to explain certain parts of the code, such as the use of the fopen() and "
     "fclose() functions.\n- Does not include any error handling for cases where the specified file cannot be opened."
     "\n\nSuggestions for improvement:\n- Add more detailed comments to explain the code's functionality and logic.\n- "
     "Include error handling for cases where the specified file cannot be opened.", [6, 8]),
    (G35.format("alpaca-13b"), 66,  # head
     "I would give Assistant 1 a score of 4 out of 10 and Assistant 2 a score of 8 out of 10.\n\nAssistant 1's "
     "implementation is incomplete and lacks detail. The answer provides a general overview of how to implement a "
     "queue using two stacks, but it does not provide any code or specific details on how to implement the enqueue "
     "and dequeue methods.", [4, 8]),
    (G35.format("alpaca-13b"), 68,
     "To find the value of f(2), we plug 2 in for x in the function f(x):\n\nf(2) = 5(2)^3 - 2(2) + 3\nf(2) = 5(8) - 2 "
     "+ 3\nf(2) = 40 - 2 + 3\nf(2) = 41\n\nTherefore, the value of f(2) is 41.\n\nAssistant 1's answer is incorrect. "
     "The correct value of f(2) is 41, not 1.\n\nAssistant 2's answer is correct. The problem-solving process is also "
     "correct.\n\nTherefore, Assistant 1's score is 3 out of 10, and Assistant 2's score is 10 out of 10. The reason "
     "for the significant difference in their scores is that Assistant 1's answer is incorrect, while Assistant 2's "
     "answer is correct and the problem-solving process is also correct.", [3, 10]),
    (G35.format("alpaca-13b"), 69,
     "Solution:\nTo solve the equation 3x + 10 = 5(x - 2), we need to simplify and solve for x.\n\n3x + 10 = 5x - 10\n"
     "Subtracting 3x from both sides:\n10 = 2x - 10\nAdding 10 to both sides:\n20 = 2x\nDividing both sides by 2:\n"
     "x = 10/2\nx = 5\n\nTherefore, the solution to the equation 3x + 10 = 5(x - 2) is x = 5.\n\nEvaluation of "
     "Assistant 1's Answer:\nAssistant 1's answer is incorrect. The correct solution to the equation is x = 5, not "
     "x = 6.\n\nScore for Assistant 1: 3/10\n\nEvaluation of Assistant 2's Answer:\nAssistant 2's answer is correct. "
     "The problem-solving steps are also correct and follow the standard algebraic method for solving linear "
     "equations.\n\nScore for Assistant 2: 9/10\n\nReason for Variation in Scores:\nThe reason for the variation in "
     "scores is that Assistant 1's answer is incorrect, while Assistant 2's answer is correct and follows the "
     "standard algebraic method for solving linear equations.\n\nTherefore, Assistant 2 performed better than "
     "Assistant 1 in solving the given problem. \n\nFinal Scores: (Assistant 1: 3/10, Assistant 2: 9/10)", [3, 9]),
    (G35.format("alpaca-13b"), 70,
     "To find the length of the line segment, we can use the distance formula, which is:\n\ndistance = sqrt((x2 - "
     "x1)^2 + (y2 - y1)^2)\n\nUsing the given endpoints, we have:\n\ndistance = sqrt((10 - 2)^2 + (4 - (-2))^2)\n"
     "distance = sqrt(8^2 + 6^2)\ndistance = sqrt(64 + 36)\ndistance = sqrt(100)\ndistance = 10\n\nTherefore, the "
     "length of the line segment is 10 units.\n\nNow, let's evaluate the problem-solving process of Assistant 1 and "
     "Assistant 2:\n\nAssistant 1's answer is incorrect, as the length of the line segment is 10 units, not 8 units."
     "\n\nAssistant 2's answer is correct. They used the Pythagorean theorem to find the length of the hypotenuse of a "
     "right triangle formed by the endpoints of the line segment, which is equal to the length of the line segment. "
     "Their problem-solving process is clear and accurate.\n\nBased on their problem-solving process and correctness "
     "of their answers, we can assign a score of 5 to Assistant 1 and a score of 9 to Assistant 2. Assistant 2 "
     "performed better due to their accurate problem-solving process.", [5, 9]),
    (G35.format("bard"), 61,
     "My apologies, but Assistant 1 did not provide a relevant answer to the given problem statement. Therefore, I "
     "cannot provide a score for their submission.\n\nAssistant 2's submission is a good start, but it does not fully "
     "implement the given problem statement. The program reads the file line by line, but it does not count the "
     "occurrences of a specific word in the file. Additionally, the program does not prompt the user to input the "
     "specific word to be counted.\n\nHere are some suggestions for improving Assistant 2's code:\n\n1. Add a prompt "
     "for the user to input the specific word to be counted.\n2. Modify the while loop to search for the specific word "
     "in each line using the string::find() function.\n3. Increment the count variable each time the specific word is "
     "found in a line.\n4. Add comments to explain the code's logic and functionality.\n\nOnce these changes are made, "
     "the program should be able to correctly count the number of occurrences of a specific word in a text file.",
     [-1, -1]),
    (G35.format("bard"), 65,  # head
     "I would rate Assistant 1's code submission a 7 out of 10 and Assistant 2's code submission a 9 out of 10.\n\n"
     "Assistant 1's code is accurate and efficient, and the comments are clear and concise.", [7, 9]),
    (G35.format("bard"), 66,  # head
     "My evaluation of the two assistants' code submissions is as follows:\n\nAssistant 1: 9\nAssistant 2: 7\n\n"
     "Assistant 1's implementation is clear, concise, and easy to understand. The code is well-structured, and the "
     "comments are helpful in explaining the code's functionality. The implementation is efficient, as it uses only "
     "two data structures, and the time complexity of the enqueue, dequeue, and other operations is O(1).", [9, 7]),
    (G35.format("bard"), 67,  # head
     "I would give Assistant 1 a score of 8 out of 10 and Assistant 2 a score of 6 out of 10.\n\nAssistant 1's "
     "implementation is concise and easy to understand.", [8, 6]),
    (G35.format("bard"), 68,
     "To find the value of f(2), we substitute x=2 into the equation:\n\nf(2) = 5(2)^3 - 2(2) + 3 = 40 - 4 + 3 = 39\n\n"
     "Therefore, the value of f(2) is 39.\n\nAssistant 1's answer is correct. The problem-solving process is "
     "straightforward and accurate.\n\nAssistant 2's answer is incorrect. The problem-solving process is correct up "
     "to the point where they plug in 2 for x. However, they made an error in simplifying the expression:\n\nf(2) = "
     "5(2)^3 - 2(2) + 3\nf(2) = 5(8) - 2 + 3\nf(2) = 40 - 2 + 3\nf(2) = 41\n\nThe correct answer is 39, not 19 or 41."
     "\n\nTherefore, Assistant 1's score is 10, while Assistant 2's score is 5. Assistant 1 performed better because "
     "their answer and problem-solving process were both correct.", [10, 5]),
    (G35.format("bard"), 69,
     "[My Solution]\nTo solve the equation 3x + 10 = 5(x - 2), we can start by distributing the 5 on the right-hand "
     "side of the equation:\n\n3x + 10 = 5x - 10\n\nNext, we can simplify the equation by combining like terms:\n\n"
     "-2x = -20\n\nFinally, we can solve for x by dividing both sides by -2:\n\nx = 10\n\nTherefore, the solution to "
     "the equation is x = 10.\n\n[Assistant 1's Solution]\nAssistant 1 correctly distributed the 5 on the right-hand "
     "side of the equation and combined like terms to get -2x = -10. However, Assistant 1 made an error in the final "
     "step by dividing both sides by -2 instead of 2, resulting in the incorrect solution of x = 5. I would give "
     "Assistant 1 a score of 8 out of 10 for correctly solving most of the problem but making a small error in the "
     "final step.\n\n[Assistant 2's Solution]\nAssistant 2 correctly distributed the 5 on the right-hand side of the "
     "equation and combined like terms to get -2x = -20. Assistant 2 then correctly solved for x by dividing both "
     "sides by -2 to get x = 10. I would give Assistant 2 a score of 10 out of 10 for correctly solving the problem. "
     "\n\nOverall, Assistant 2 performed better than Assistant 1 by correctly solving the problem without any errors.",
     [8, 10]),
    (G35.format("bard"), 70,
     "To solve the problem, we can use the distance formula or the Pythagorean theorem. Let's first solve the problem "
     "using the distance formula:\n\nDistance formula:\n\n$$d = \\sqrt{(x_2 - x_1)^2 + (y_2 - y_1)^2}$$\n\nwhere "
     "$(x_1, y_1)$ and $(x_2, y_2)$ are the coordinates of the endpoints.\n\nGiven endpoints: $(2, -2)$ and "
     "$(10, 4)$\n\nUsing the distance formula:\n\n$$d = \\sqrt{(10 - 2)^2 + (4 - (-2))^2} = \\sqrt{8^2 + 6^2} = "
     "\\sqrt{100} = 10$$\n\nTherefore, the length of the line segment is 10 units.\n\nNow, let's examine the "
     "problem-solving process of Assistant 1 and Assistant 2:\n\nAssistant 1:\n\n- The assistant correctly identifies "
     "that the length of a line segment is the distance between its endpoints.\n- The assistant correctly uses the "
     "distance formula to find the length of the line segment.\n- The assistant's answer is correct.\n\nOverall, "
     "Assistant 1's solution is correct and straightforward. We would rate Assistant 1's solution as 10 out of 10.\n\n"
     "Assistant 2:\n\n- The assistant correctly identifies that the length of a line segment is typically measured as "
     "the distance between its endpoints.\n- The assistant correctly uses the Pythagorean theorem to find the length "
     "of the line segment.\n- However, the assistant's solution contains an error. The legs of the right triangle are "
     "not 2 and 4, but rather 8 and 6 (the differences in the x and y coordinates of the endpoints, respectively).\n\n"
     "Despite the error, Assistant 2's solution is still correct, but less straightforward than Assistant 1's "
     "solution. We would rate Assistant 2's solution as 8 out of 10.\n\nIn conclusion, both assistants provided "
     "correct solutions to the problem, but Assistant 1's solution was more straightforward and did not contain any "
     "errors. Therefore, we would consider Assistant 1 to have performed better.", [10, 8]),
    (G35.format("gpt35"), 65,  # head
     "I would give Assistant 1 a score of 8 and Assistant 2 a score of 9.\n\nAssistant 1's implementation is correct "
     "and efficient. The code is well-structured and easy to read, with helpful comments that explain the logic and "
     "functionality of the code.", [8, 9]),
    (G35.format("gpt35"), 68,
     "To find the value of f(2), we substitute 2 in place of x in the given equation of f(x):\n\nf(2) = 5(2)^3 - 2(2) "
     "+ 3\n\nf(2) = 5(8) - 4 + 3\n\nf(2) = 40 - 1\n\nTherefore, the value of f(2) is 39.\n\nAssistant 1's solution is "
     "correct. \n\nAssistant 2's solution is also correct. \n\nBoth assistants arrived at the correct answer using the "
     "correct method. Therefore, both assistants receive a score of 10.", [10, 10]),
    (G35.format("gpt35"), 69,
     "Solution:\n\nGiven equation is 3x + 10 = 5(x - 2).\n\nExpanding the right side using the distributive property, "
     "we get:\n\n3x + 10 = 5x - 10\n\nSubtracting 3x from both sides, we get:\n\n10 = 2x - 10\n\nAdding 10 to both "
     "sides, we get:\n\n20 = 2x\n\nDividing both sides by 2, we get:\n\nx = 10\n\nTherefore, the solution to the "
     "equation 3x + 10 = 5(x - 2) is x = 10.\n\nNow, let's evaluate the answers provided by Assistant 1 and Assistant "
     "2.\n\nAssistant 1's answer:\n\n3x + 10 = 5(x - 2)\n\n3x + 10 = 5x - 10  (use the distributive property)\n\n10 + "
     "10 = 5x - 3x  (subtract 3x from both sides)\n\n20 = 2x (simplify)\n\nx = 10 (divide both sides by 2) \n\n"
     "Assistant 1's answer is correct and follows the correct steps to solve the equation. Therefore, we can give "
     "Assistant 1 a score of 10.\n\nAssistant 2's answer:\n\n3x + 10 = 5(x - 2)\n\n3x + 10 = 5x - 10  (use the "
     "distributive property)\n\n-2x = -10 (subtract 5x from both sides)\n\nx = -5 (divide both sides by -2)\n\n"
     "Assistant 2's answer is incorrect. The mistake is in the step where they subtract 5x from both sides. It should "
     "be subtracting 3x instead. Therefore, we can give Assistant 2 a score of 5.\n\nIn conclusion, Assistant 1 "
     "performed better than Assistant 2 in solving the given equation. The scores for Assistant 1 and Assistant 2 are "
     "10 and 5, respectively.", [10, 5]),
    (G35.format("gpt35"), 70,
     "To find the length of the line segment, we can use the distance formula:\n\ndistance = sqrt((10 - 2)^2 + (4 - "
     "(-2))^2)\ndistance = sqrt(8^2 + 6^2)\ndistance = sqrt(64 + 36)\ndistance = sqrt(100)\ndistance = 10\n\n"
     "Therefore, the length of the line segment is 10 units.\n\nAssistant 1 correctly used the distance formula to "
     "find the length of the line segment. The steps are correct, and the answer is also correct. Therefore, "
     "Assistant 1's score is 10.\n\nAssistant 2 used the Pythagorean theorem to find the length of the line segment. "
     "However, the legs of the right triangle are not 2 and 4, as stated by Assistant 2. The legs are actually 8 and "
     "6, which are the differences between the x-coordinates and y-coordinates of the endpoints, respectively. "
     "Therefore, the correct calculation is:\n\nhypotenuse^2 = 8^2 + 6^2\nhypotenuse = \u221a(8^2 + 6^2)\nhypotenuse "
     "\u2248 \u221a(64 + 36)\nhypotenuse \u2248 \u221a100\nhypotenuse = 10\n\nThus, the length of the line segment is "
     "10 units.\n\nAlthough Assistant 2 used a valid method, the incorrect values for the legs of the right triangle "
     "led to an incorrect answer. Therefore, Assistant 2's score is 7.\n\nIn conclusion, Assistant 1 performed better "
     "than Assistant 2 in this case.", [10, 7]),
    (G35.format("llama-13b"), 62,  # head
     "My evaluation of the two assistants' submissions is as follows:\n\nAssistant 1: \n\nScore: 6/10\n\nStrengths:\n"
     "- Provides a clear problem statement and example.\n- Uses correct terminology to describe the problem.\n\n"
     "Weaknesses:\n- Does not provide any code or algorithm to solve the problem.\n- Could provide more explanation on "
     "how to approach the problem.\n\nSuggestions for improvement:\n- Provide a code implementation or algorithm to "
     "solve the problem.\n- Include more detailed explanation on how to approach the problem.\n\nAssistant 2:\n\n"
     "Score: 8/10\n\nStrengths:\n- Provides a clear and concise implementation of the dynamic programming approach "
     "to solve the problem.", [6, 8]),
    (G35.format("llama-13b"), 68,
     "To find the value of f(2), we substitute 2 for x in the given function f(x):\n\nf(2) = 5(2)^3 - 2(2) + 3\n"
     "f(2) = 40 - 4 + 3\nf(2) = 39\n\nTherefore, the value of f(2) is 39.\n\nAssistant 1's answer is incorrect as they "
     "have made an error in their calculation. The correct value of f(2) is 39, not 26.\n\nAssistant 2's answer is "
     "correct. They have correctly substituted 2 for x in the given function f(x) and solved the resulting expression "
     "to obtain the correct value of f(2), which is 39.\n\nBased on their problem-solving process and correctness, "
     "Assistant 2 performed better than Assistant 1. \n\nTherefore, the scores for Assistant 1 and Assistant 2 are 4 "
     "and 9, respectively.", [4, 9]),
    (G35.format("llama-13b"), 69,
     "Solution:\n\nGiven equation is 3x + 10 = 5(x - 2).\n\nExpanding the right side, we get 3x + 10 = 5x - 10.\n\n"
     "Bringing all the x terms to one side and all the constant terms to the other side, we get 2x = 20.\n\nDividing "
     "both sides by 2, we get x = 10/2 = 5.\n\nTherefore, x = 5 is the solution to the equation 3x + 10 = 5(x - 2).\n\n"
     "Assistant 1's solution is incorrect. The equation 3x + 10 = 5(x - 2) was not simplified correctly. The correct "
     "simplification should be 3x + 10 = 5x - 10, not 5x - 10x + 20. Therefore, the final answer of x = 10/30 = 1/3 is "
     "also incorrect.\n\nAssistant 2's solution is correct. The simplification of the equation is done correctly, and "
     "the solution x = -5 is correct.\n\nBased on the correctness of their solutions, Assistant 2 performed better "
     "than Assistant 1. Therefore, the scores for Assistant 1 and Assistant 2 are 3 and 9, respectively.\n\nOutput: "
     "(3, 9)", [3, 9]),
    (G35.format("llama-13b"), 70,
     "To find the length of the line segment, we can use the distance formula:\n\nd = sqrt((x2 - x1)^2 + (y2 - "
     "y1)^2)\n\nPlugging in the values, we get:\n\nd = sqrt((10 - 2)^2 + (4 - (-2))^2)\nd = sqrt(8^2 + 6^2)\nd = "
     "sqrt(64 + 36)\nd = sqrt(100)\nd = 10\n\nTherefore, the length of the line segment is 10 units.\n\nAssistant 1's "
     "answer is correct.\n\nAssistant 2's answer is also correct. They used the Pythagorean theorem to find the "
     "length of the hypotenuse of a right triangle formed by the endpoints of the line segment. However, the method "
     "used by Assistant 2 is more complex than necessary, as it involves finding the length of the legs of the "
     "triangle before using the Pythagorean theorem. Nonetheless, the answer is correct.\n\nBased on their correct "
     "answers, both Assistant 1 and Assistant 2 receive a score of 10. However, Assistant 1's method is simpler and "
     "more straightforward, so it may be preferred over Assistant 2's method.", [10, 10]),
    (G35.format("vicuna-13b-20230322-new-hp-fp16"), 61,
     "My apologies, but both Assistant 1 and Assistant 2 have submitted the same code. Therefore, I cannot provide a "
     "fair evaluation of their coding abilities. Please ask them to resubmit their code with their own "
     "implementation.", [-1, -1]),
    (G35.format("vicuna-13b-20230322-new-hp-fp16"), 62,  # head
     "I would give both Assistant 1 and Assistant 2 a score of 8 out of 10.\n\nBoth implementations correctly solve "
     "the problem of finding the longest common subsequence of two input strings using dynamic programming. The code "
     "is efficient and runs in O(mn) time, where m and n are the lengths of the input strings.", [8, 8]),
    (G35.format("vicuna-13b-20230322-new-hp-fp16"), 66,  # head
     "I would rate both Assistant 1 and Assistant 2's submissions a 9 out of 10. Both submissions correctly implement "
     "the given problem statement, contain accurate and efficient code, and adhere to proper coding standards and "
     "best practices.", [9, 9]),
    (G35.format("vicuna-13b-20230322-new-hp-fp16"), 68,
     "To find the value of f(2), we plug 2 in for x in the function f(x):\n\nf(2) = 5(2)^3 - 2(2) + 3\nf(2) = 5(8) - 4 "
     "+ 3\nf(2) = 40 - 1\nf(2) = 39\n\nTherefore, the value of f(2) is 39.\n\nAssistant 1 and Assistant 2 both "
     "correctly plugged in 2 for x and simplified the expression to find the value of f(2). Both assistants arrived "
     "at the correct answer of 19. However, the correct answer is actually 39, not 19. Therefore, both assistants "
     "made an error in their calculations. \n\nBased on this, I would give both Assistant 1 and Assistant 2 a score "
     "of 7 out of 10. While they correctly identified the need to plug in 2 for x, they made an error in their "
     "calculations, resulting in an incorrect answer.", [7, 7]),
    (G35.format("vicuna-13b-20230322-new-hp-fp16"), 69,  # tail
     "Based on this evaluation, Assistant 2 performed better than Assistant 1. Therefore, the scores for Assistant 1 "
     "and Assistant 2 are 4 and 9, respectively. Assistant 1's score is lower due to the incorrect step in the "
     "problem-solving process.", [4, 9]),
    (G35.format("vicuna-13b-20230322-new-hp-fp16"), 70,
     "To solve the problem, we need to find the distance between the two given points. We can use the distance "
     "formula to do this:\n\ndistance = sqrt((10-2)^2 + (4-(-2))^2)\ndistance = sqrt(8^2 + 6^2)\ndistance = sqrt(64 + "
     "36)\ndistance = sqrt(100)\ndistance = 10\n\nTherefore, the length of the line segment is 10.\n\nNow, let's "
     "evaluate the problem-solving process of Assistant 1 and Assistant 2:\n\nAssistant 1's solution is correct. They "
     "correctly used the Pythagorean theorem to find the length of the hypotenuse of the right triangle formed by the "
     "two given points, which is equal to the distance between the two points. They also simplified the answer to "
     "2sqrt2, which is in simplest radical form.\n\nScore for Assistant 1: 10\n\nAssistant 2's solution is identical "
     "to Assistant 1's solution, with the same correct steps and answer.\n\nScore for Assistant 2: 10\n\nBoth "
     "assistants provided correct solutions with the same steps and answer, so they both receive a score of 10.",
     [10, 10]),
    # ---- GPT-4 as the reviewer: the general and coding prompts' first line, the math prompt's closing scores
    (G4_13B.format("bard"), 63,  # head
     "7 8.5\n\nAssistant 1:\nStrengths:\n- The code is simple and easy to understand.\n- The function is "
     "well-structured and returns a boolean value.", [7.0, 8.5]),
    (G4_13B.format("bard"), 68,
     "First, I will solve the problem independently:\n\nf(x) = 5x^3 - 2x + 3\nf(2) = 5(2)^3 - 2(2) + 3 = 5(8) - 4 + 3 "
     "= 40 - 4 + 3 = 39\n\nNow, I will evaluate the problem-solving process of Assistant 1 and Assistant 2:\n\n"
     "Assistant 1:\nf(2) = 5(2)^3 - 2(2) + 3 = 40 - 4 + 3 = 39\nThe steps and the final answer are correct.\n\n"
     "Assistant 2:\nf(2) = 5(2)^3 - 2(2) + 3 = 5 * 8 - 2 + 3 = 41 - 2 + 3 = 40\nThe steps are incorrect, and the "
     "final answer is wrong.\n\nScores:\nAssistant 1: 10\nAssistant 2: 4\n\nAssistant 1 performed better because they "
     "provided the correct steps and final answer, while Assistant 2 made mistakes in their calculations.", [10, 4]),
    (G4_13B.format("llama-13b"), 68,
     "First, I will solve the problem independently:\n\nGiven f(x) = 5x^3 - 2x + 3, we need to find the value of "
     "f(2).\n\nf(2) = 5(2)^3 - 2(2) + 3 = 5 * 8 - 4 + 3 = 40 - 4 + 3 = 39\n\nNow, I will evaluate the problem-solving "
     "process of Assistant 1 and Assistant 2:\n\nAssistant 1:\nf(2) = 26\n\nAssistant 1 provided an incorrect answer "
     "without showing any steps.\n\nAssistant 2:\nf(2) = 5(2)^3 - 2(2) + 3 = 5 * 8 - 2 + 3 = 41 - 2 + 3 = 40\n\n"
     "Assistant 2 provided a step-by-step solution but made a mistake in the calculation. The correct calculation "
     "should be:\n\nf(2) = 5(2)^3 - 2(2) + 3 = 5 * 8 - 4 + 3 = 40 - 4 + 3 = 39\n\nScores:\nAssistant 1: 1 (Incorrect "
     "answer and no steps provided)\nAssistant 2: 7 (Correct steps but made a calculation mistake)\n\nAssistant 2 "
     "performed better as they provided the correct steps but made a calculation mistake. The correct answer is f(2) "
     "= 39.\n\nOutput: (1, 7)", [1, 7]),
    (G4_13B.format("llama-13b"), 69,
     "First, I will solve the problem independently:\n\nGiven equation: 3x + 10 = 5(x - 2)\n\n1. Distribute the 5 on "
     "the right-hand side: 3x + 10 = 5x - 10\n2. Move the x terms to one side by subtracting 3x from both sides: 10 = "
     "2x - 10\n3. Move the constant term to the other side by adding 10 to both sides: 20 = 2x\n4. Divide both sides "
     "by 2 to solve for x: x = 10\n\nNow, I will evaluate the problem-solving process of Assistant 1 and Assistant 2:"
     "\n\nAssistant 1:\nThe steps provided by Assistant 1 are incorrect and confusing. The answer is also incorrect. "
     "\n\nAssistant 2:\n1. The first step is correct.\n2. The second step is incorrect. The correct step should be "
     "subtracting 3x from both sides, not subtracting 5x.\n3-7. All the subsequent steps are incorrect as they are "
     "based on the incorrect second step.\n\nScores:\nAssistant 1: 1/10\nAssistant 2: 2/10\n\nBoth assistants "
     "performed poorly, but Assistant 2 performed slightly better as the first step was correct.", [1, 2]),
    ("review_alpaca-13b_vicuna-13b.jsonl", 68,
     "First, I will solve the problem independently:\n\nGiven f(x) = 5x^3 - 2x + 3, we need to find the value of "
     "f(2).\n\nf(2) = 5(2)^3 - 2(2) + 3 = 5 * 8 - 4 + 3 = 40 - 4 + 3 = 39\n\nNow, I will examine the problem-solving "
     "process of Assistant 1 and Assistant 2.\n\nAssistant 1:\nThe value of f(2) is 1.\n\nAssistant 1 provided an "
     "incorrect answer without showing any problem-solving steps.\n\nAssistant 2:\nTo find the value of f(2), we need "
     "to substitute 2 for x in the function f(x).\n\nf(x) = 5x^3 - 2x + 3\n\nWhen x = 2, we have:\n\nf(2) = 5(2)^3 - "
     "2(2) + 3 = 5 * 8 - 2 + 3 = 41 - 2 + 3 = 40\n\nAssistant 2 provided a detailed problem-solving process but made "
     "an error in the calculation: 5 * 8 - 4 + 3 should be 40 - 4 + 3, which equals 39.\n\nBased on the evaluation, I "
     "would give the following scores:\n\nAssistant 1: 1 (Incorrect answer and no problem-solving steps)\nAssistant "
     "2: 8 (Detailed problem-solving process but with a minor calculation error)\n\nAssistant 2 performed better than "
     "Assistant 1.", [1, 8]),
    ("review_alpaca-13b_vicuna-13b.jsonl", 69,
     "First, let's solve the problem independently:\n\n3x + 10 = 5(x - 2)\n3x + 10 = 5x - 10\n10 + 10 = 5x - 3x\n"
     "20 = 2x\nx = 10\n\nNow, let's examine the problem-solving process of Assistant 1 and Assistant 2:\n\nAssistant 1:"
     "\nx = 6\n\nAssistant 1 directly provided the answer without any explanation. The answer is incorrect.\n\n"
     "Assistant 2:\n1. Simplify the left-hand side (LHS) of the equation by moving all the terms to one side and the "
     "numbers to the other: 3x + 10 = 5x - 10\n2. Combine the terms on the left-hand side by subtracting 5x from both "
     "sides: 3x = -5x\n3. Simplify the left-hand side by dividing both sides by 3: x = -5/3\n4. Take the natural "
     "logarithm of both sides to get the solution in terms of the natural logarithm base e: ln|x| = ln|-5/3| = -5/3 "
     "ln|e| = -5/3 ln(1.414) = -5/3 ln(1.414) = -5/3 ln(1 + 1/1.414) = -5/3 ln(1.414)\n5. Exponentiate both sides to "
     "get the solution in terms of e: x = e^(-5/3)\n6. Rearrange the solution to get x in terms of Euler's number: x "
     "= e^(-5/3) = 1/1.414^(-5/3) = 0.5877\n7. Round the solution to the desired number of decimal places: x = "
     "0.5877\n\nAssistant 2's steps are incorrect starting from step 2. The correct step 2 should be subtracting 3x "
     "from both sides: 10 = 2x. The rest of the steps are not applicable to this problem.\n\nScores:\nAssistant 1: 1 "
     "(Incorrect answer, no explanation)\nAssistant 2: 3 (Incorrect answer, incorrect steps)\n\nBoth assistants "
     "performed poorly, but Assistant 2 provided a more detailed explanation, even though it was incorrect.", [1, 3]),
    ("review_alpaca-13b_vicuna-13b.jsonl", 70,
     "First, let's solve the problem independently:\n\nWe have two points (2, -2) and (10, 4). To find the length of "
     "the line segment, we can use the distance formula:\n\ndistance = sqrt((x2 - x1)^2 + (y2 - y1)^2)\n\nPlugging in "
     "the values:\n\ndistance = sqrt((10 - 2)^2 + (4 - (-2))^2)\ndistance = sqrt(8^2 + 6^2)\ndistance = sqrt(64 + 36)"
     "\ndistance = sqrt(100)\ndistance = 10\n\nNow, let's evaluate the answers provided by Assistant 1 and Assistant "
     "2:\n\nAssistant 1:\nThe length of the line segment is 8 units.\n\nThis answer is incorrect.\n\nAssistant 2:\nThe "
     "length of the line segment is 17.973.\n\nThis answer is also incorrect.\n\nNow, let's assign scores to "
     "Assistant 1 and Assistant 2:\n\nAssistant 1: The answer is incorrect, and there is no explanation of the "
     "problem-solving process. Therefore, the score is 1.\n\nAssistant 2: The answer is incorrect, but the "
     "problem-solving process is mostly correct except for the calculation of (10 - 2)^2 + (4 - (-2))^2, which should "
     "be 8^2 + 6^2 instead of 18^2 + 4^2. Therefore, the score is 5.\n\nIn conclusion, the scores are (1, 5) for "
     "Assistant 1 and Assistant 2, respectively. Assistant 2 performed better, but both assistants provided incorrect "
     "answers.", [1, 5]),
    ("vicuna-13b-20230322-new-hp-fp16/review_gpt35_vicuna-13b-20230322-new-hp-fp16.jsonl", 68,
     "First, I will solve the problem independently:\n\nf(x) = 5x^3 - 2x + 3\nf(2) = 5(2)^3 - 2(2) + 3\nf(2) = 5(8) - "
     "4 + 3\nf(2) = 40 - 4 + 3\nf(2) = 39\n\nNow, I will evaluate the problem-solving process of Assistant 1 and "
     "Assistant 2:\n\nAssistant 1:\nf(2) = 5(2)^3 - 2(2) + 3\nf(2) = 5(8) - 4 + 3\nf(2) = 40 - 1\nf(2) = 39\n\n"
     "Assistant 2:\nf(2) = 5(2)^3 - 2(2) + 3\nf(2) = 5(4) - 2 + 3 (Incorrect step: 2^3 should be 8, not 4)\nf(2) = 20 "
     "- 2 + 3\nf(2) = 19\n\nAssistant 1's process is correct, and the final answer is 39. Assistant 2 made an error in "
     "calculating 2^3, which led to an incorrect final answer. Therefore, I would give Assistant 1 a score of 10 and "
     "Assistant 2 a score of 4.\n\nThe output tuple is (10, 4).", [10, 4]),
    ("vicuna-13b_20230322-new-hp-fp16/review_alpaca-13b_vicuna-13b-20230322-new-hp-fp16.jsonl", 69,
     "First, I will solve the problem independently:\n\n3x + 10 = 5(x - 2)\n3x + 10 = 5x - 10\n-2x = -20\nx = 10\n\n"
     "Now, I will examine the problem-solving process of Assistant 1 and Assistant 2:\n\nAssistant 1:\nx = 6.\n"
     "Assistant 1's answer is incorrect.\n\nAssistant 2:\n3x + 10 = 5(x - 2)\n3x + 10 = 5x - 10\n-2x = -20\nx = 10\n"
     "Assistant 2's answer is correct.\n\nBased on the correctness of their answers and problem-solving steps, I would "
     "give Assistant 1 a score of 1 and Assistant 2 a score of 10. Assistant 2 performed better because they provided "
     "the correct answer and showed the correct problem-solving steps. Assistant 1 only provided an incorrect answer "
     "without any explanation or steps.\n\nOutput: (1, 10)", [1, 10]),
    ("vicuna-13b_20230322-new-hp-fp16/review_alpaca-13b_vicuna-13b-20230322-new-hp-fp16.jsonl", 70,
     "First, let's solve the problem independently:\n\nThe endpoints of the line segment are (2, -2) and (10, 4). We "
     "can use the distance formula to find the length of the segment:\n\ndistance = \u221a((x2 - x1)^2 + (y2 - y1)^2)"
     "\n\nPlugging in the coordinates:\n\ndistance = \u221a((10 - 2)^2 + (4 - (-2))^2)\ndistance = \u221a((8)^2 + "
     "(6)^2)\ndistance = \u221a(64 + 36)\ndistance = \u221a100\ndistance = 10\n\nNow, let's evaluate the answers "
     "provided by Assistant 1 and Assistant 2:\n\nAssistant 1:\nThe answer provided by Assistant 1 is incorrect. The "
     "length of the line segment is not 8 units. There is no explanation or problem-solving process provided.\n\n"
     "Assistant 2:\nAssistant 2's answer is also incorrect. The calculations are wrong, and the Pythagorean theorem "
     "is not applied correctly. The correct calculation should be:\n\nhypotenuse^2 = 8^2 + 6^2\nhypotenuse = \u221a(8^2"
     " + 6^2)\nhypotenuse \u2248 \u221a(64 + 36)\nhypotenuse \u2248 \u221a100\nhypotenuse \u2248 10\n\nThus, the length "
     "of the line segment is 10.\n\nScores:\nAssistant 1: 2 (Incorrect answer, no explanation)\nAssistant 2: 4 "
     "(Incorrect answer, but attempted problem-solving process)\n\nThe better-performing assistant is Assistant 2, as "
     "they attempted to solve the problem using the Pythagorean theorem, but their calculations were incorrect. "
     "Assistant 1 provided an incorrect answer without any explanation or problem-solving process.\n\nOutput: (2, 4)",
     [2, 4]),
    ("review_llama_alpaca-13b.jsonl", 69,
     "First, let's solve the problem independently:\n\n3x + 10 = 5(x - 2)\n3x + 10 = 5x - 10\n10 = 2x - 10\n20 = 2x\n"
     "x = 10\n\nNow, let's examine the problem-solving process of Assistant 1 and Assistant 2:\n\nAssistant 1:\n3x + "
     "10 = 5x - 10x + 20 = 20 + 10x = 30x = 10.\n\nAssistant 1's steps are incorrect and confusing. They incorrectly "
     "combined the terms, leading to an incorrect answer.\n\nAssistant 2:\nx = 6.\n\nAssistant 2's answer is also "
     "incorrect, and they didn't provide any steps to show their problem-solving process.\n\nScores:\nAssistant 1: 2 "
     "(incorrect steps and answer)\nAssistant 2: 1 (incorrect answer and no steps provided)\n\nIn this case, neither "
     "assistant performed well, but Assistant 1 at least attempted to show some steps, even though they were "
     "incorrect.", [2, 1]),
    ("review_llama_alpaca-13b.jsonl", 70,
     "First, let's solve the problem independently. We can use the distance formula to find the length of the line "
     "segment:\n\nDistance = sqrt((x2 - x1)^2 + (y2 - y1)^2)\n\nHere, (x1, y1) = (2, -2) and (x2, y2) = (10, 4).\n\n"
     "Distance = sqrt((10 - 2)^2 + (4 - (-2))^2)\nDistance = sqrt(8^2 + 6^2)\nDistance = sqrt(64 + 36)\nDistance = "
     "sqrt(100)\nDistance = 10 units\n\nNow, let's examine the problem-solving process of Assistant 1 and Assistant "
     "2.\n\nAssistant 1:\nThe length of the line segment is 10 units.\n\nAssistant 2:\nThe length of the line segment "
     "is 8 units.\n\nAssistant 1 has the correct answer, while Assistant 2 has an incorrect answer. Therefore, I would "
     "give Assistant 1 a score of 10 and Assistant 2 a score of 1.\n\nThe output tuple is (10, 1). Assistant 1 "
     "performed better in this case.", [10, 1]),
]
